package meter

import (
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func TestKeyLoad(t *testing.T) {
	t.Parallel()
	var a KeyLoad
	a.add(10, 1)
	a.add(10, 2)
	a.add(12, 1)
	a.add(11, 1) // the clock stepped back: a second of its own, in order
	a.add(10, 1) // and again, onto a second already counted
	want := KeyLoad{WU: 6, Writes: 5, seconds: []second{{10, 4}, {11, 1}, {12, 1}}}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("load %+v, want %+v", a, want)
	}
	if at, wu := a.Peak(); !at.Equal(time.Unix(10, 0)) || wu != 4 {
		t.Fatalf("peak %v at %v, want 4 at second 10", wu, at)
	}
	// Two meters' loads of one key add up second by second: the peak of
	// the sum is not the sum of the peaks.
	b := KeyLoad{WU: 5, Writes: 2, seconds: []second{{9, 1}, {12, 4}}}
	sum := a.plus(b)
	want = KeyLoad{WU: 11, Writes: 7, seconds: []second{{9, 1}, {10, 4}, {11, 1}, {12, 5}}}
	if !reflect.DeepEqual(sum, want) || !reflect.DeepEqual(b.plus(a), want) {
		t.Fatalf("sum %+v, want %+v", sum, want)
	}
	if at, wu := sum.Peak(); !at.Equal(time.Unix(12, 0)) || wu != 5 {
		t.Fatalf("peak of the sum %v at %v, want 5 at second 12", wu, at)
	}
	if at, wu := (KeyLoad{}).Peak(); !at.IsZero() || wu != 0 {
		t.Fatalf("peak of nothing %v at %v", wu, at)
	}
}

func TestPartition(t *testing.T) {
	t.Parallel()
	sch := Schema{PK: "pk", SK: "sk"}
	for _, tt := range []struct {
		pk   types.AttributeValue
		want string
	}{
		{s("RUN#r1"), "RUN#r1"},
		{&types.AttributeValueMemberN{Value: "42"}, "42"},
		{&types.AttributeValueMemberB{Value: []byte{0xca, 0xfe}}, "cafe"},
	} {
		if got := sch.partition(Item{"pk": tt.pk, "sk": s("x")}); got != tt.want {
			t.Errorf("partition(%v) = %q, want %q", tt.pk, got, tt.want)
		}
	}
	if got := indexPartition("by_kind", s("RUN#3")); got != "index:by_kind/RUN#3" {
		t.Errorf("index partition %q", got)
	}
}
