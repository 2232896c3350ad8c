package meter

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
func l(v ...types.AttributeValue) types.AttributeValue {
	return &types.AttributeValueMemberL{Value: v}
}

func TestItemSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		item Item
		want int
	}{
		// "id" (2) + "abc" (3)
		{"string", Item{"id": s("abc")}, 5},
		// UTF-8 bytes, not characters: "é" is 2 bytes; name "nom" 3.
		{"utf-8", Item{"nom": s("é")}, 5},
		// "n" (1) + 5 significant digits: ceil(5/2)+1 = 4.
		{"number", Item{"n": n("12345")}, 5},
		// Leading and trailing zeros trimmed: 1000 -> "1" -> 2; 0.0050 -> "5" -> 2.
		{"zeros trimmed", Item{"a": n("1000"), "b": n("0.0050")}, 6},
		// "ok" (2) + 1, "nul" (3) + 1
		{"bool and null", Item{"ok": &types.AttributeValueMemberBOOL{Value: true}, "nul": &types.AttributeValueMemberNULL{Value: true}}, 7},
		// raw bytes, not base64: "b" (1) + 4
		{"binary", Item{"b": &types.AttributeValueMemberB{Value: []byte{1, 2, 3, 4}}}, 5},
		// "l" (1) + 3 overhead + ("x" 1 + 1) + ("12" -> 2, + 1) = 1+3+2+3
		{"list", Item{"l": l(s("x"), n("12"))}, 9},
		// "m" (1) + 3 + element "k":"v" (1 + 1 + 1 overhead)
		{"map", Item{"m": &types.AttributeValueMemberM{Value: Item{"k": s("v")}}}, 7},
		// "e" (1) + 3: empty list and map
		{"empty list", Item{"e": l()}, 4},
		// sets: sum of elements, "ss" 2 + 1 + 2; "ns" 2 + 2 + 3 ("1", "123")
		{"sets", Item{"ss": &types.AttributeValueMemberSS{Value: []string{"a", "bc"}}, "ns": &types.AttributeValueMemberNS{Value: []string{"1", "123"}}}, 12},
		{"nil item", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := ItemSize(tt.item); got != tt.want {
				t.Fatalf("ItemSize = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestUnits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		size   int
		wu, ru float64
	}{
		{0, 1, 1},        // a missing item still costs the minimum
		{1, 1, 1},        //
		{1024, 1, 1},     // exactly 1 KB
		{1025, 2, 1},     // one byte over: a second WU
		{3 * 1000, 3, 1}, // a 3 KB item: 3 WU, 1 RU
		{4096, 4, 1},     //
		{4097, 5, 2},     //
		{41779, 41, 11},  // AWS's example: 40.8 KB (41,779 bytes) of query results round up to 44 KB, 11 RU
	}
	for _, tt := range tests {
		if wu, ru := WriteUnits(tt.size), ReadUnits(tt.size); wu != tt.wu || ru != tt.ru {
			t.Errorf("size %d: WU %v RU %v, want %v %v", tt.size, wu, ru, tt.wu, tt.ru)
		}
	}
	if got := ItemSize(Item{"pad": s(strings.Repeat("x", 3000))}); WriteUnits(got) != 3 {
		t.Errorf("a 3003-byte item costs %v WU", WriteUnits(got))
	}
}
