package meter

import (
	"math"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Item is a DynamoDB item as the SDK represents it.
type Item = map[string]types.AttributeValue

// Unit sizes: a write unit covers 1 KB, a read unit 4 KB (1 KB = 1024
// bytes). A write of 0 bytes (a missing item) still costs one unit, and so
// does a read.
const (
	writeUnitBytes = 1024
	readUnitBytes  = 4096
)

// ItemSize is the size of an item by DynamoDB's rules ("DynamoDB item sizes
// and formats", Amazon DynamoDB Developer Guide, CapacityUnitCalculations):
// the sum, over its attributes, of the UTF-8 length of the name plus the
// size of the value (ValueSize). A nil item has size 0.
func ItemSize(it Item) int {
	n := 0
	for name, v := range it {
		n += len(name) + ValueSize(v)
	}
	return n
}

// ValueSize is the size of one attribute value, without its name, by the
// rules of the same page:
//
//   - String: its UTF-8 bytes. Binary: its raw bytes (not the base64 text).
//   - Number: about 1 byte per two significant digits, plus 1 byte; leading
//     and trailing zeros are trimmed (NumberSize). AWS calls this rule
//     approximate; it is the one it publishes, so it is the one used here.
//   - Boolean and null: 1 byte.
//   - List and map: 3 bytes, plus each element's size plus 1 byte per
//     element; a map element's size includes its key's UTF-8 bytes.
//   - Sets: the page is silent on them; their size here is the sum of their
//     elements' sizes (strings, numbers or binaries as above), with no
//     overhead.
func ValueSize(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		return NumberSize(v.Value)
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += ValueSize(e) + 1
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range v.Value {
			n += len(k) + ValueSize(e) + 1
		}
		return n
	case *types.AttributeValueMemberSS:
		return sum(v.Value, func(s string) int { return len(s) })
	case *types.AttributeValueMemberNS:
		return sum(v.Value, NumberSize)
	case *types.AttributeValueMemberBS:
		return sum(v.Value, func(b []byte) int { return len(b) })
	}
	return 0
}

func sum[T any](xs []T, size func(T) int) int {
	n := 0
	for _, x := range xs {
		n += size(x)
	}
	return n
}

// NumberSize is the size of a number given as DynamoDB's decimal text:
// ceil(significant digits / 2) + 1. The sign, the decimal point and the
// exponent are not digits; leading and trailing zeros are trimmed, so "0"
// has no significant digit and takes 1 byte, "1000" takes 2, "-12.50" 3.
func NumberSize(s string) int {
	s = strings.TrimLeft(s, "+-")
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		s = s[:i]
	}
	s = strings.Replace(s, ".", "", 1)
	s = strings.Trim(s, "0")
	return (len(s)+1)/2 + 1
}

// WriteUnits is the number of write units one write of an item of size
// bytes costs: one per started KB, at least one.
func WriteUnits(size int) float64 { return units(size, writeUnitBytes) }

// ReadUnits is the number of read units a strongly consistent read of size
// bytes costs: one per started 4 KB, at least one. An eventually
// consistent read costs half, a transactional read twice.
func ReadUnits(size int) float64 { return units(size, readUnitBytes) }

func units(size, per int) float64 {
	return math.Max(1, math.Ceil(float64(size)/float64(per)))
}
