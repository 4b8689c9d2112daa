package campaign

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// localeRE is the BCP-47-ish shape of a locale with a message or a fallback:
// a 2-3 letter language and optional subtags ("en", "en-US", "zh-Hant-TW").
var localeRE = regexp.MustCompile(`^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$`)

// normLocale is the comparison form of a locale: lower case, "_" read as "-".
func normLocale(s string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), "_", "-"))
}

func language(norm string) string {
	lang, _, _ := strings.Cut(norm, "-")
	return lang
}

// localeIndex resolves a device locale to a locale that has a message.
// It is built once per campaign (Render) so that resolution per token is a
// few map lookups.
type localeIndex struct {
	def    string
	exact  map[string]string // defined locale or fallback key, raw and normalized -> defined locale
	byLang map[string]string // normalized language -> defined locale
}

// buildIndex indexes c's locales and reports every problem with messages
// keys and fallbacks. The index is usable (if partial) even with problems.
func buildIndex(c *Campaign) (*localeIndex, []Problem) {
	var probs []Problem
	ix := &localeIndex{
		def:    c.DefaultLocale,
		exact:  make(map[string]string),
		byLang: make(map[string]string),
	}
	defined := make(map[string]string) // normalized -> raw
	for _, loc := range sortedKeys(c.Messages) {
		field := "messages." + loc
		if !localeRE.MatchString(loc) {
			probs = append(probs, Problem{field, `not a locale such as "en" or "pt-BR"`})
			continue
		}
		n := normLocale(loc)
		if other, dup := defined[n]; dup {
			probs = append(probs, Problem{field, fmt.Sprintf("same locale as %s (locales are case-insensitive)", other)})
			continue
		}
		defined[n] = loc
		ix.exact[loc], ix.exact[n] = loc, loc
	}
	if d, ok := defined[normLocale(c.DefaultLocale)]; ok {
		ix.def = d
	}

	// Language matches: the bare language wins, else the first "lang-*".
	norms := sortedKeys(defined)
	for _, n := range norms {
		lang := language(n)
		if _, set := ix.byLang[lang]; !set || n == lang {
			ix.byLang[lang] = defined[n]
		}
	}

	fallbacks := make(map[string]string, len(c.Fallbacks)) // normalized key -> normalized target
	raw := make(map[string]string, 2*len(c.Fallbacks))     // normalized -> as written, for messages
	for _, k := range sortedKeys(c.Fallbacks) {
		v := c.Fallbacks[k]
		fallbacks[normLocale(k)] = normLocale(v)
		raw[normLocale(k)], raw[normLocale(v)] = k, v
	}
	keys := make(map[string]string, len(c.Fallbacks)) // normalized -> raw
	for _, k := range sortedKeys(c.Fallbacks) {
		field := "fallbacks." + k
		switch {
		case !localeRE.MatchString(k):
			probs = append(probs, Problem{field, `not a locale such as "en" or "pt-BR"`})
			continue
		case keys[normLocale(k)] != "":
			probs = append(probs, Problem{field, fmt.Sprintf("same locale as %s (locales are case-insensitive)", keys[normLocale(k)])})
			continue
		case defined[normLocale(k)] != "":
			probs = append(probs, Problem{field, "locale has its own message, the fallback would never be used"})
			continue
		}
		keys[normLocale(k)] = k
		target, err := followFallback(normLocale(k), fallbacks, defined, raw)
		if err != "" {
			probs = append(probs, Problem{field, err})
			continue
		}
		ix.exact[k], ix.exact[normLocale(k)] = target, target
	}
	return ix, probs
}

// followFallback walks the fallback chain from key to a defined locale.
// It returns the defined locale, or why there is none.
func followFallback(key string, fallbacks, defined, raw map[string]string) (string, string) {
	seen := map[string]bool{key: true}
	cur := key
	for {
		next := fallbacks[cur]
		if d, ok := defined[next]; ok {
			return d, ""
		}
		if _, ok := fallbacks[next]; !ok {
			return "", fmt.Sprintf("points to %q, which has no message and no fallback", raw[next])
		}
		if seen[next] {
			return "", fmt.Sprintf("fallback cycle through %q", raw[next])
		}
		seen[next] = true
		cur = next
	}
}

// resolve returns the defined locale serving a device locale.
func (ix *localeIndex) resolve(locale string) string {
	if l, ok := ix.exact[locale]; ok {
		return l
	}
	n := normLocale(locale)
	if l, ok := ix.exact[n]; ok {
		return l
	}
	if l, ok := ix.byLang[language(n)]; ok {
		return l
	}
	return ix.def
}

// ResolveLocale returns the locale whose message a device with the given
// locale receives (see the package documentation for the order). It builds
// the index on each call; Rendered.For is the fast path.
func (c *Campaign) ResolveLocale(locale string) string {
	ix, _ := buildIndex(c)
	return ix.resolve(locale)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
