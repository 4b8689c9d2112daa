package campaign

import "testing"

func TestResolveLocale(t *testing.T) {
	c := &Campaign{
		DefaultLocale: "en-US",
		Messages: map[string]Message{
			"en-US": {}, "en-GB": {}, "de-DE": {}, "de-CH": {}, "fr": {}, "fr-CA": {}, "pt-PT": {}, "pt-BR": {},
		},
		Fallbacks: map[string]string{"de-AT": "de-DE", "de-LI": "de-AT", "gsw": "de-CH", "pt-AO": "pt-PT"},
	}
	tests := []struct{ in, want string }{
		{"en-US", "en-US"},
		{"en-GB", "en-GB"},
		{"en-gb", "en-GB"},      // case-insensitive
		{"en_GB", "en-GB"},      // Android style
		{"de-AT", "de-DE"},      // explicit fallback
		{"de-at", "de-DE"},      // explicit fallback, any case
		{"de-LI", "de-DE"},      // chained fallback
		{"gsw", "de-CH"},        // fallback for a bare language
		{"pt-AO", "pt-PT"},      // explicit fallback beats the language match (pt-BR < pt-PT)
		{"pt-MZ", "pt-BR"},      // language match: lexicographically first pt-*
		{"pt", "pt-BR"},         // bare language, no bare message
		{"de", "de-CH"},         // lexicographically first de-* (de-CH < de-DE)
		{"fr-BE", "fr"},         // the bare language beats fr-CA
		{"fr", "fr"},            // exact
		{"en-AU", "en-GB"},      // language match, not the default
		{"ja-JP", "en-US"},      // nothing close: default
		{"", "en-US"},           // unknown: default
		{"zh-Hant-TW", "en-US"}, // no zh: default
		{"  fr-CA ", "fr-CA"},   // surrounding space
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := c.ResolveLocale(tt.in); got != tt.want {
				t.Errorf("ResolveLocale(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
