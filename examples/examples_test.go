package examples_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"strings"
	"testing"

	"stepflow/examples"
	"stepflow/internal/workflow"
)

// TestEveryExampleIsValid: each example file is one workflow definition
// with no unknown field, valid as POST /workflows checks it (its templates
// included), named as its file is (the dashboard's picker shows the file
// and fills in the definition).
func TestEveryExampleIsValid(t *testing.T) {
	t.Parallel()
	names := examples.Names()
	if len(names) == 0 {
		t.Fatal("no examples")
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, err := fs.ReadFile(examples.FS, name)
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.DisallowUnknownFields()
			var in workflow.Input
			if err := dec.Decode(&in); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if dec.More() {
				t.Fatal("more than one JSON value")
			}
			def, err := in.Normalize()
			if err != nil {
				t.Fatalf("invalid: %v", err)
			}
			if want := strings.TrimSuffix(name, ".json"); def.Name != want {
				t.Errorf("named %q, want %q as the file is", def.Name, want)
			}
		})
	}
}
