package sender

import (
	"fmt"

	"github.com/owlpost/owlpost/internal/config"
	"github.com/owlpost/owlpost/internal/push"
	"github.com/owlpost/owlpost/internal/push/apns"
	"github.com/owlpost/owlpost/internal/push/fcm"
)

// NewPush builds the provider adapter for cfg.Sender.Platform from cfg.APNs
// (ios) or cfg.FCM (android). It does not connect; the stage's Run calls
// Prepare.
func NewPush(cfg *config.Config) (push.Sender, error) {
	switch push.Platform(cfg.Sender.Platform) {
	case push.IOS:
		s, err := apns.New(APNsOptions(cfg.APNs))
		if err != nil {
			return nil, fmt.Errorf("sender: %w", err)
		}
		return s, nil
	case push.Android:
		s, err := fcm.New(FCMOptions(cfg.FCM))
		if err != nil {
			return nil, fmt.Errorf("sender: %w", err)
		}
		return s, nil
	}
	return nil, fmt.Errorf("sender: sender.platform must be ios or android, got %q", cfg.Sender.Platform)
}

// APNsOptions maps the apns config section to the adapter's options.
func APNsOptions(c config.APNsConfig) apns.Options {
	return apns.Options{
		Host:         c.Host,
		KeyFile:      c.KeyFile,
		KeyID:        c.KeyID,
		TeamID:       c.TeamID,
		CertFile:     c.CertFile,
		CertPassword: c.CertPassword,
		Topic:        c.Topic,
		CAFile:       c.CAFile,
		Connections:  c.Connections,
		Timeout:      c.Timeout,
		Transport:    c.Transport,
	}
}

// FCMOptions maps the fcm config section to the adapter's options.
func FCMOptions(c config.FCMConfig) fcm.Options {
	return fcm.Options{
		ProjectID:       c.ProjectID,
		CredentialsFile: c.CredentialsFile,
		Endpoint:        c.Endpoint,
		CAFile:          c.CAFile,
		Clients:         c.Clients,
		Timeout:         c.Timeout,
		Transport:       c.Transport,
	}
}
