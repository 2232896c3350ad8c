package meter

import (
	"errors"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func TestApplyUpdate(t *testing.T) {
	t.Parallel()
	key := Item{"pk": s("K")}
	before := Item{"pk": s("K"), "st": s("pending"), "n": n("1.5"), "l": l(s("a")), "gone": s("x")}
	vals := map[string]types.AttributeValue{
		":r": s("running"), ":one": n("1"), ":tenth": n("0.1"), ":l": l(s("b")), ":d": s("dflt"),
		":set": &types.AttributeValueMemberSS{Value: []string{"x", "y"}},
	}
	tests := []struct {
		name   string
		before Item
		expr   string
		names  map[string]string
		want   Item
		err    error
	}{
		{"set and remove, with a name placeholder", before, "SET #st = :r REMOVE gone", map[string]string{"#st": "status"},
			Item{"pk": s("K"), "st": s("pending"), "status": s("running"), "n": n("1.5"), "l": l(s("a"))}, nil},
		{"arithmetic is exact", before, "SET n = n + :tenth", nil,
			Item{"pk": s("K"), "st": s("pending"), "n": n("1.6"), "l": l(s("a")), "gone": s("x")}, nil},
		{"if_not_exists keeps an existing value and list_append appends", before, "SET st = if_not_exists(st, :d), l = list_append(l, :l)", nil,
			Item{"pk": s("K"), "st": s("pending"), "n": n("1.5"), "l": l(s("a"), s("b")), "gone": s("x")}, nil},
		{"an update of a missing item starts from its key", nil, "SET c = if_not_exists(c, :d) ADD cnt :one, tags :set", nil,
			Item{"pk": s("K"), "c": s("dflt"), "cnt": n("1"), "tags": &types.AttributeValueMemberSS{Value: []string{"x", "y"}}}, nil},
		{"operands read the item before the update", Item{"pk": s("K"), "a": n("1")}, "SET a = :one, b = a + :one", nil,
			Item{"pk": s("K"), "a": n("1"), "b": n("2")}, nil},
		{"a nested path is not evaluated", before, "SET m.x = :r", nil, nil, errUnsupported},
		{"an unknown function is not evaluated", before, "SET st = size(l)", nil, nil, errUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := applyUpdate(tt.before, key, tt.expr, tt.names, vals)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("applyUpdate = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestAttemptedFallsBackToAnUpperBound(t *testing.T) {
	t.Parallel()
	before := Item{"pk": s("K")} // 3 bytes
	expr := "SET m.x = :v"
	// Not evaluated: the item (3) + the value ":v" (5) + the name "#n" maps to (4).
	got := attempted(before, before, &expr, map[string]string{"#n": "name"}, map[string]types.AttributeValue{":v": s("hello")})
	if got != 12 {
		t.Fatalf("attempted = %d, want 12", got)
	}
}
