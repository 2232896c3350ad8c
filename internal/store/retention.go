package store

import (
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Retention. DynamoDB deletes an item some time (up to a few days) after
// the epoch second in its TTL attribute, at no cost and without a Scan;
// reads treat an item past it as already gone, so an expired run leaves
// every list, count and read at once. What carries it, and when:
//
//   - a run's header and chunks: retention after the run ends, set by the
//     write that ends it (which writes them anyway) and removed by a retry;
//     every read of a run starts at its header, so the run is gone then;
//   - an order history entry a step wrote: retention after it is written
//     (the order stays; its history keeps the entries of that long);
//   - a run's failed-attempt records, inputs, outputs and callback items:
//     retention plus dataHorizon after they are written, since a live run
//     needs them and setting their TTL when the run ends would cost a write
//     per item; they are unreachable once the header is gone.
//
// Orders (with their creation entry), workflows and tokens never expire.

// attrTTL is the table's TTL attribute (Schema.TTL), in epoch seconds.
const attrTTL = "ttl"

// dataHorizon is how long past its write a run's data outlives the
// retention of the run: longer than the longest a step may wait (a year),
// so only a run that stays live more than this after writing an output
// can lose it.
const dataHorizon = 400 * 24 * time.Hour

func epoch(t time.Time) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(t.Unix(), 10)}
}

// expiresAt returns the time in item's TTL attribute, or zero.
func expiresAt(item map[string]types.AttributeValue) time.Time {
	v, ok := item[attrTTL].(*types.AttributeValueMemberN)
	if !ok {
		return time.Time{}
	}
	n, err := strconv.ParseInt(v.Value, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(n, 0).UTC()
}

// expired reports whether item is past its TTL at now.
func expired(item map[string]types.AttributeValue, now time.Time) bool {
	at := expiresAt(item)
	return !at.IsZero() && !now.Before(at)
}

// withDataTTL sets the TTL of a run's data item written at.
func (s *Store) withDataTTL(item map[string]types.AttributeValue, at time.Time) map[string]types.AttributeValue {
	item[attrTTL] = epoch(at.Add(s.retention + dataHorizon))
	return item
}
