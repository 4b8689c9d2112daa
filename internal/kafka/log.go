package kafka

import (
	"context"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/owlpost/owlpost/internal/config"
)

// clientLogger passes franz-go's own log lines (connection failures,
// retries, group and transaction trouble) to slog's default logger, which
// the daemons point at their log. franz-go logs every transaction at info,
// so below debug only its warnings and errors pass; log_level debug passes
// everything, request by request (verbose: for tracing, not for a launch).
// franz-go does not log credentials.
type clientLogger struct{ level kgo.LogLevel }

func newClientLogger(cfg *config.Config) clientLogger {
	l, err := cfg.SlogLevel()
	if err != nil {
		l = slog.LevelInfo // the daemons refuse such a config before this
	}
	switch {
	case l <= slog.LevelDebug:
		return clientLogger{kgo.LogLevelDebug}
	case l <= slog.LevelWarn:
		return clientLogger{kgo.LogLevelWarn}
	default:
		return clientLogger{kgo.LogLevelError}
	}
}

func (c clientLogger) Level() kgo.LogLevel { return c.level }

// Log is only called for levels up to Level (franz-go checks).
func (c clientLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	sl := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		sl = slog.LevelError
	case kgo.LogLevelWarn:
		sl = slog.LevelWarn
	case kgo.LogLevelInfo:
		sl = slog.LevelInfo
	}
	slog.Default().Log(context.Background(), sl, "kafka client: "+msg, keyvals...)
}
