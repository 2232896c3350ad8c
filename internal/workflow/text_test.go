package workflow

import (
	"strings"
	"testing"
)

// TestTextRejectsInvisibleAndBidi covers names a person cannot read as
// written: made only of invisible characters, or reordered on screen by
// bidirectional controls (a spoofing risk in the dashboard and the CLI).
func TestTextRejectsInvisibleAndBidi(t *testing.T) {
	t.Parallel()
	withName := func(name string) Input {
		return Input{Name: &name, Steps: []StepInput{{ID: strPtr("a")}}}
	}
	withType := func(typ string) Input {
		return Input{Name: strPtr("w"), Steps: []StepInput{{ID: strPtr("a"), Type: &typ}}}
	}
	withAction := func(action string) Input {
		return Input{Name: strPtr("w"), Steps: []StepInput{{ID: strPtr("a"), Config: &ConfigInput{Action: &action}}}}
	}
	tests := []struct {
		name  string
		in    Input
		field string
		msg   string
	}{
		{"zero-width space only", withName("\u200b"), "name", "visible"},
		{"zero-width joiners and a BOM", withName("\u200c\u200d\u2060\ufeff"), "name", "visible"},
		{"Hangul fillers", withName("\u3164\u115f"), "name", "visible"},
		{"invisible type", withType("\u200b\u200b"), "steps[0].type", "visible"},
		{"right-to-left override", withName("invoice\u202egpj.exe"), "name", "bidirectional"},
		{"left-to-right embedding", withName("a\u202ab"), "name", "bidirectional"},
		{"pop directional formatting", withName("a\u202cb"), "name", "bidirectional"},
		{"right-to-left isolate", withName("a\u2067b\u2069"), "name", "bidirectional"},
		{"first strong isolate", withName("a\u2068b"), "name", "bidirectional"},
		{"right-to-left mark", withName("a\u200fb"), "name", "bidirectional"},
		{"Arabic letter mark", withName("a\u061cb"), "name", "bidirectional"},
		{"override in a type", withType("t\u202e"), "steps[0].type", "bidirectional"},
		{"override in an action", withAction("ship\u202eorder"), "steps[0].config.action", "printable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tt.in.Normalize()
			fe, ok := err.(*FieldError)
			if !ok {
				t.Fatalf("err = %v (%T), want *FieldError", err, err)
			}
			if fe.Field != tt.field || !strings.Contains(fe.Msg, tt.msg) {
				t.Fatalf("got %s: %s; want field %s with %q", fe.Field, fe.Msg, tt.field, tt.msg)
			}
		})
	}
	// Invisible characters inside otherwise visible text are fine: emoji
	// sequences join with U+200D, and Arabic or Hebrew names need no
	// controls.
	for _, name := range []string{"family \U0001F468\u200d\U0001F469\u200d\U0001F467", "طلب الشحن", "הזמנה", "naïve café"} {
		if _, err := withName(name).Normalize(); err != nil {
			t.Errorf("name %q rejected: %v", name, err)
		}
	}
}

func strPtr(s string) *string { return &s }
