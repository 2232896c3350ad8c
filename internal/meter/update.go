package meter

import (
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// errUnsupported: the update expression uses something applyUpdate does not
// evaluate; the caller falls back to an estimate.
var errUnsupported = errors.New("update expression not evaluated")

// applyUpdate returns the item an update expression would produce from
// before (nil for a missing item, which the update creates), with the key
// the update targets. It is needed only for updates whose condition failed:
// DynamoDB charges them by the size of the item they tried to write, which
// was never stored. It evaluates SET (values, paths, if_not_exists,
// list_append, + and -), REMOVE, ADD and DELETE on top-level attributes;
// anything else (nested paths, other functions) returns errUnsupported.
func applyUpdate(before, key Item, expr string, names map[string]string, values map[string]types.AttributeValue) (Item, error) {
	it := maps.Clone(before)
	if it == nil {
		it = maps.Clone(key)
	}
	toks, err := tokenize(expr)
	if err != nil {
		return nil, err
	}
	p := &updateParser{toks: toks, names: names, values: values, item: it, orig: maps.Clone(it)}
	if err := p.run(); err != nil {
		return nil, err
	}
	return it, nil
}

type updateParser struct {
	toks   []string
	pos    int
	names  map[string]string
	values map[string]types.AttributeValue
	item   Item
	orig   Item // operands read the item as it was before the update
}

func (p *updateParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *updateParser) next() string {
	t := p.peek()
	p.pos++
	return t
}

func (p *updateParser) expect(t string) error {
	if got := p.next(); got != t {
		return fmt.Errorf("%w: want %q, got %q", errUnsupported, t, got)
	}
	return nil
}

func clause(t string) string {
	switch u := strings.ToUpper(t); u {
	case "SET", "REMOVE", "ADD", "DELETE":
		return u
	}
	return ""
}

func (p *updateParser) run() error {
	for p.pos < len(p.toks) {
		c := clause(p.next())
		if c == "" {
			return fmt.Errorf("%w: clause expected", errUnsupported)
		}
		for {
			if err := p.action(c); err != nil {
				return err
			}
			if p.peek() != "," {
				break
			}
			p.next()
		}
	}
	return nil
}

func (p *updateParser) action(c string) error {
	name, err := p.path()
	if err != nil {
		return err
	}
	switch c {
	case "REMOVE":
		delete(p.item, name)
		return nil
	case "SET":
		if err := p.expect("="); err != nil {
			return err
		}
		v, err := p.value()
		if err != nil {
			return err
		}
		p.item[name] = v
		return nil
	}
	v, err := p.operand()
	if err != nil {
		return err
	}
	cur := p.item[name]
	if c == "ADD" {
		if cur == nil {
			p.item[name] = v
			return nil
		}
		sum, err := arith(cur, v, "+")
		if err == nil {
			p.item[name] = sum
			return nil
		}
		u, err := setOp(cur, v, true)
		p.item[name] = u
		return err
	}
	if cur != nil { // DELETE from a set
		d, err := setOp(cur, v, false)
		p.item[name] = d
		return err
	}
	return nil
}

// path reads a top-level attribute name or #placeholder.
func (p *updateParser) path() (string, error) {
	t := p.next()
	name := t
	if strings.HasPrefix(t, "#") {
		n, ok := p.names[t]
		if !ok {
			return "", fmt.Errorf("%w: unknown name %s", errUnsupported, t)
		}
		name = n
	} else if t == "" || !isWord(t) || clause(t) != "" {
		return "", fmt.Errorf("%w: path expected, got %q", errUnsupported, t)
	}
	if n := p.peek(); n == "." || n == "[" {
		return "", fmt.Errorf("%w: nested path", errUnsupported)
	}
	return name, nil
}

// value reads operand [(+|-) operand].
func (p *updateParser) value() (types.AttributeValue, error) {
	a, err := p.operand()
	if err != nil {
		return nil, err
	}
	if op := p.peek(); op == "+" || op == "-" {
		p.next()
		b, err := p.operand()
		if err != nil {
			return nil, err
		}
		return arith(a, b, op)
	}
	return a, nil
}

func (p *updateParser) operand() (types.AttributeValue, error) {
	t := p.peek()
	switch {
	case strings.HasPrefix(t, ":"):
		p.next()
		v, ok := p.values[t]
		if !ok {
			return nil, fmt.Errorf("%w: unknown value %s", errUnsupported, t)
		}
		return v, nil
	case strings.EqualFold(t, "if_not_exists"):
		p.next()
		cur, dflt, err := p.args(func() (types.AttributeValue, error) {
			name, err := p.path()
			return p.orig[name], err
		})
		if err != nil || cur != nil {
			return cur, err
		}
		return dflt, nil
	case strings.EqualFold(t, "list_append"):
		p.next()
		a, b, err := p.args(p.value)
		if err != nil {
			return nil, err
		}
		la, okA := a.(*types.AttributeValueMemberL)
		lb, okB := b.(*types.AttributeValueMemberL)
		if !okA || !okB {
			return nil, fmt.Errorf("%w: list_append of a non-list", errUnsupported)
		}
		return &types.AttributeValueMemberL{Value: append(slices.Clone(la.Value), lb.Value...)}, nil
	}
	name, err := p.path()
	if err != nil {
		return nil, err
	}
	v, ok := p.orig[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s does not exist", errUnsupported, name)
	}
	return v, nil
}

// args reads a function's two arguments, "(" first "," value ")".
func (p *updateParser) args(first func() (types.AttributeValue, error)) (a, b types.AttributeValue, err error) {
	if err = p.expect("("); err != nil {
		return nil, nil, err
	}
	if a, err = first(); err != nil {
		return nil, nil, err
	}
	if err = p.expect(","); err != nil {
		return nil, nil, err
	}
	if b, err = p.value(); err != nil {
		return nil, nil, err
	}
	return a, b, p.expect(")")
}

// arith adds or subtracts two numbers exactly.
func arith(a, b types.AttributeValue, op string) (types.AttributeValue, error) {
	na, okA := a.(*types.AttributeValueMemberN)
	nb, okB := b.(*types.AttributeValueMemberN)
	if !okA || !okB {
		return nil, fmt.Errorf("%w: arithmetic on a non-number", errUnsupported)
	}
	x, okX := new(big.Rat).SetString(na.Value)
	y, okY := new(big.Rat).SetString(nb.Value)
	if !okX || !okY {
		return nil, fmt.Errorf("%w: bad number", errUnsupported)
	}
	if op == "+" {
		x.Add(x, y)
	} else {
		x.Sub(x, y)
	}
	return &types.AttributeValueMemberN{Value: decimal(x, max(scale(na.Value), scale(nb.Value)))}, nil
}

// scale is the number of decimal places a number's text can carry.
func scale(s string) int {
	mant, exp, _ := strings.Cut(strings.ToLower(s), "e")
	n := 0
	if _, frac, ok := strings.Cut(mant, "."); ok {
		n = len(frac)
	}
	var e int
	if _, err := fmt.Sscan(exp, &e); err == nil {
		n -= e
	}
	return max(n, 0)
}

func decimal(x *big.Rat, places int) string {
	s := x.FloatString(places)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// setOp returns the union (add) or difference of two sets of one type.
func setOp(a, b types.AttributeValue, add bool) (types.AttributeValue, error) {
	combine := func(x, y []string) []string {
		if add {
			out := slices.Clone(x)
			for _, v := range y {
				if !slices.Contains(out, v) {
					out = append(out, v)
				}
			}
			return out
		}
		return slices.DeleteFunc(slices.Clone(x), func(v string) bool { return slices.Contains(y, v) })
	}
	switch x := a.(type) {
	case *types.AttributeValueMemberSS:
		if y, ok := b.(*types.AttributeValueMemberSS); ok {
			return &types.AttributeValueMemberSS{Value: combine(x.Value, y.Value)}, nil
		}
	case *types.AttributeValueMemberNS:
		if y, ok := b.(*types.AttributeValueMemberNS); ok {
			return &types.AttributeValueMemberNS{Value: combine(x.Value, y.Value)}, nil
		}
	}
	return a, fmt.Errorf("%w: set operation on these types", errUnsupported)
}

func isWord(t string) bool {
	for _, r := range t {
		if !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return t != ""
}

// tokenize splits an update expression into names (plain, #placeholder),
// :values and the punctuation = , ( ) + - . [ ].
func tokenize(expr string) ([]string, error) {
	var toks []string
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case strings.IndexByte("=,()+-.[]", c) >= 0:
			toks = append(toks, string(c))
			i++
		case c == '#' || c == ':' || isWord(string(c)):
			j := i + 1
			for j < len(expr) && isWord(string(expr[j])) {
				j++
			}
			toks = append(toks, expr[i:j])
			i = j
		default:
			return nil, fmt.Errorf("%w: character %q", errUnsupported, c)
		}
	}
	return toks, nil
}
