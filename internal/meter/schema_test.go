package meter

import (
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// testSchema has one index of each projection, with other key names than
// the table's: the meter must not assume Stepflow's names.
var testSchema = Schema{PK: "id", SK: "rk", Indexes: []Index{
	{Name: "by_status", PK: "st", SK: "at", Projection: types.ProjectionTypeInclude, NonKey: []string{"note"}},
	{Name: "by_owner", PK: "owner", Projection: types.ProjectionTypeKeysOnly},
	{Name: "everything", PK: "all", Projection: types.ProjectionTypeAll},
}}

func TestIndexWrites(t *testing.T) {
	t.Parallel()
	base := Item{"id": s("A#1"), "rk": s("A"), "st": s("new"), "at": s("t1"), "note": s("hi"), "x": s("zz")}
	with := func(kv ...any) Item {
		it := Item{}
		for k, v := range base {
			it[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(it, kv[i].(string))
				continue
			}
			it[kv[i].(string)] = kv[i+1].(types.AttributeValue)
		}
		return it
	}
	// The by_status entry of base: id (2+3) + rk (2+1) + st (2+3) + at (2+2)
	// + note (4+2) = 23 bytes; "x" is not projected.
	const entry = 23
	tests := []struct {
		name          string
		before, after Item
		want          []indexWrite
	}{
		{"new item enters the index it has keys for", nil, base, []indexWrite{{"by_status", "put", entry, "index:by_status/new"}}},
		{"deleted item leaves it", base, nil, []indexWrite{{"by_status", "delete", entry, "index:by_status/new"}}},
		// "st" new -> old: the index key moves: delete the old entry from
		// partition "new", put the new one in partition "old".
		{"index key changes", base, with("st", s("old")), []indexWrite{{"by_status", "delete", entry, "index:by_status/new"}, {"by_status", "put", entry, "index:by_status/old"}}},
		// Only the projected "note" changes (2 bytes -> 5): one update, sized by the larger entry.
		{"projected attribute changes", base, with("note", s("hello")), []indexWrite{{"by_status", "update", entry + 3, "index:by_status/new"}}},
		{"unprojected attribute changes", base, with("x", s("other")), nil},
		// Removing the index sort key takes the item out (sparse index).
		{"index sort key removed", base, with("at", nil), []indexWrite{{"by_status", "delete", entry, "index:by_status/new"}}},
		// KEYS_ONLY without a sort key: entry id (5) + rk (3) + owner (5+2) = 15.
		{"keys-only index gains an item", base, with("owner", s("me")), []indexWrite{{"by_owner", "put", 15, "index:by_owner/me"}}},
		{"keys-only index ignores other changes", with("owner", s("me")), with("owner", s("me"), "note", s("x")), []indexWrite{{"by_status", "update", entry, "index:by_status/new"}}},
		// ALL projects every attribute: the entry is the whole item, base
		// (26 bytes) + all (3+1) = 30 before, 31 after ("x": "zz" -> "zzz").
		{"all-projection index updates on any change", with("all", s("1")), with("all", s("1"), "x", s("zzz")), []indexWrite{{"everything", "update", 31, "index:everything/1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := testSchema.indexWrites(tt.before, tt.after); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("indexWrites = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKind(t *testing.T) {
	t.Parallel()
	sch := Schema{PK: "pk", SK: "sk"}
	for key, want := range map[[2]string]string{
		{"RUN#r1", "RUN"}:      "RUN",
		{"RUN#r1", "STEP#003"}: "RUN/STEP",
		{"IDEM#r1#2", "IDEM"}:  "IDEM",
		{"plain", "x"}:         "plain",
	} {
		if got := sch.Kind(Item{"pk": s(key[0]), "sk": s(key[1])}); got != want {
			t.Errorf("Kind(%v) = %q, want %q", key, got, want)
		}
	}
}

func TestSchemaOf(t *testing.T) {
	t.Parallel()
	k := func(name string, kt types.KeyType) types.KeySchemaElement {
		return types.KeySchemaElement{AttributeName: aws.String(name), KeyType: kt}
	}
	got := SchemaOf(&types.TableDescription{
		KeySchema: []types.KeySchemaElement{k("pk", types.KeyTypeHash), k("sk", types.KeyTypeRange)},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndexDescription{
			{IndexName: aws.String("a"), KeySchema: []types.KeySchemaElement{k("g", types.KeyTypeHash)},
				Projection: &types.Projection{ProjectionType: types.ProjectionTypeInclude, NonKeyAttributes: []string{"x"}}},
			{IndexName: aws.String("b"), KeySchema: []types.KeySchemaElement{k("h", types.KeyTypeHash), k("i", types.KeyTypeRange)},
				Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly}},
		},
	})
	want := Schema{PK: "pk", SK: "sk", Indexes: []Index{
		{Name: "a", PK: "g", Projection: types.ProjectionTypeInclude, NonKey: []string{"x"}},
		{Name: "b", PK: "h", SK: "i", Projection: types.ProjectionTypeKeysOnly},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("SchemaOf = %+v, want %+v", got, want)
	}
}
