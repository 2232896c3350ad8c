package meter

import (
	"context"
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Schema is what the meter needs to know of a table: its key attributes
// and its global secondary indexes. Local secondary indexes are not
// modelled.
type Schema struct {
	PK, SK  string // SK is empty for a table without a sort key
	Indexes []Index
}

// Index is a global secondary index: its key attributes (SK may be empty)
// and its projection. NonKey lists the projected attributes of an INCLUDE
// projection.
type Index struct {
	Name       string
	PK, SK     string
	Projection types.ProjectionType
	NonKey     []string
}

// SchemaOf reads a schema from a table's description (DescribeTable), so
// the meter follows whatever indexes the table really has.
func SchemaOf(d *types.TableDescription) Schema {
	var s Schema
	s.PK, s.SK = keyNames(d.KeySchema)
	for _, g := range d.GlobalSecondaryIndexes {
		ix := Index{Name: aws.ToString(g.IndexName), Projection: types.ProjectionTypeAll}
		ix.PK, ix.SK = keyNames(g.KeySchema)
		if p := g.Projection; p != nil && p.ProjectionType != "" {
			ix.Projection, ix.NonKey = p.ProjectionType, p.NonKeyAttributes
		}
		s.Indexes = append(s.Indexes, ix)
	}
	return s
}

// Describer is the part of the DynamoDB client Describe uses.
type Describer interface {
	DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
}

// Describe returns the schema of the table named table.
func Describe(ctx context.Context, db Describer, table string) (Schema, error) {
	out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		return Schema{}, fmt.Errorf("describe table %s: %w", table, err)
	}
	return SchemaOf(out.Table), nil
}

func keyNames(ks []types.KeySchemaElement) (pk, sk string) {
	for _, k := range ks {
		switch k.KeyType {
		case types.KeyTypeHash:
			pk = aws.ToString(k.AttributeName)
		case types.KeyTypeRange:
			sk = aws.ToString(k.AttributeName)
		}
	}
	return pk, sk
}

// key returns the primary key attributes of an item.
func (s Schema) key(it Item) Item {
	k := Item{s.PK: it[s.PK]}
	if s.SK != "" {
		k[s.SK] = it[s.SK]
	}
	return k
}

// Kind labels an item for the tallies: the prefix of its partition key
// before the first '#' ("RUN#r1" is "RUN"), followed by "/" and the sort
// key's prefix when the sort key has one ("STEP#003" under "RUN#r1" is
// "RUN/STEP"). A key without '#' is its own label; a non-string key is
// "other".
func (s Schema) Kind(key Item) string {
	pk, ok := key[s.PK].(*types.AttributeValueMemberS)
	if !ok {
		return "other"
	}
	kind, _, _ := strings.Cut(pk.Value, "#")
	if sk, ok := key[s.SK].(*types.AttributeValueMemberS); ok {
		if pre, _, found := strings.Cut(sk.Value, "#"); found {
			kind += "/" + pre
		}
	}
	return kind
}

// partition names the partition a write of the item with this key lands
// on: its partition key's value ("RUN#r1"); a number as written, a binary
// value in hex. See Snapshot.Keys.
func (s Schema) partition(key Item) string { return keyValue(key[s.PK]) }

// indexPartition names the partition of index ix that an index write
// with the index partition key value v lands on.
func indexPartition(ix string, v types.AttributeValue) string {
	return "index:" + ix + "/" + keyValue(v)
}

func keyValue(v types.AttributeValue) string {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return v.Value
	case *types.AttributeValueMemberN:
		return v.Value
	case *types.AttributeValueMemberB:
		return hex.EncodeToString(v.Value)
	}
	return "(none)"
}

// entry is an item's entry in ix, or nil if the item is not in the index.
// An item is in a global secondary index only when it has every key
// attribute of the index (Developer Guide, GSI). The entry holds the table's key, the index's key and the projected
// attributes: KEYS_ONLY none, INCLUDE the listed ones, ALL every one.
func (s Schema) entry(ix Index, it Item) Item {
	if it == nil || it[ix.PK] == nil || (ix.SK != "" && it[ix.SK] == nil) {
		return nil
	}
	e := s.key(it)
	e[ix.PK] = it[ix.PK]
	if ix.SK != "" {
		e[ix.SK] = it[ix.SK]
	}
	switch ix.Projection {
	case types.ProjectionTypeAll:
		for k, v := range it {
			e[k] = v
		}
	case types.ProjectionTypeInclude:
		for _, k := range ix.NonKey {
			if v, ok := it[k]; ok {
				e[k] = v
			}
		}
	}
	return e
}

// indexWrite is one write DynamoDB makes to an index for a table write.
type indexWrite struct {
	Index string
	Op    string // "put", "delete" or "update"
	Size  int    // the index entry's size; for "update" the larger of before and after
	// Partition is the index partition the write lands on (see
	// indexPartition): the entry's index partition key, before the write
	// for a delete, after it otherwise.
	Partition string
}

// indexWrites lists the index writes that changing an item from before to
// after causes (either may be nil), by the rules of "Global secondary
// indexes: write capacity units" (Developer Guide, GSI): an item entering
// an index costs a put, leaving it a delete, a change of the index's key a
// delete plus a put, and a change of projected attributes only an update;
// an item that stays out of an index, or whose entry does not change, costs
// nothing. Each write costs one unit per started KB of the index entry,
// whose size is that of the table key, the index key and the projected
// attributes (the 100 bytes the same page adds per index item are storage
// overhead, not part of the write size).
func (s Schema) indexWrites(before, after Item) []indexWrite {
	var out []indexWrite
	for _, ix := range s.Indexes {
		b, a := s.entry(ix, before), s.entry(ix, after)
		switch {
		case b == nil && a == nil:
		case b == nil:
			out = append(out, indexWrite{ix.Name, "put", ItemSize(a), indexPartition(ix.Name, a[ix.PK])})
		case a == nil:
			out = append(out, indexWrite{ix.Name, "delete", ItemSize(b), indexPartition(ix.Name, b[ix.PK])})
		case !reflect.DeepEqual(b[ix.PK], a[ix.PK]) || (ix.SK != "" && !reflect.DeepEqual(b[ix.SK], a[ix.SK])):
			out = append(out, indexWrite{ix.Name, "delete", ItemSize(b), indexPartition(ix.Name, b[ix.PK])},
				indexWrite{ix.Name, "put", ItemSize(a), indexPartition(ix.Name, a[ix.PK])})
		case !reflect.DeepEqual(b, a):
			out = append(out, indexWrite{ix.Name, "update", max(ItemSize(b), ItemSize(a)), indexPartition(ix.Name, a[ix.PK])})
		}
	}
	return out
}
