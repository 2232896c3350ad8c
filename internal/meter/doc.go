// Package meter counts what AWS requests cost the way AWS bills them: SDK
// middleware (Attach adds it to an aws.Config) that applies DynamoDB's
// published on-demand rules to every request it sees, and counts SQS
// requests. It never changes a request: where it needs an item's size that
// the request does not show, it reads the item through a separate,
// unmetered client.
//
//	m := meter.New(schema, unmeteredClient) // schema: meter.Describe(ctx, db, table)
//	m.Attach(&cfg)                          // clients built from cfg are metered
//	...
//	snap := m.Snapshot()                    // snap.WU, snap.RU, snap.Lines, snap.SQS
//
// # DynamoDB rules and their sources
//
// Item sizes follow the Developer Guide's page on item sizes and formats
// (CapacityUnitCalculations); see ValueSize. One write unit (WU) writes up to
// 1 KB, one read unit (RU) reads up to 4 KB strongly consistent (Developer
// Guide, read-write-operations; the on-demand pricing page):
//
//   - PutItem, UpdateItem, DeleteItem, and each item of BatchWriteItem: 1 WU
//     per started KB of the larger of the item before and after the write
//     (for a delete, the item deleted), at least 1 (read-write-operations).
//   - A write whose condition fails still consumes write units, by the size
//     of the item, which the same page says may be the item stored or the one
//     the write attempted; its example charges the larger of the two. The
//     meter charges the larger of the item as it is and as the write tried to
//     make it; for an update it evaluates the update expression on the item
//     (see applyUpdate), and for expressions beyond that evaluator it charges
//     the item plus every expression value and name, an upper bound. A failed
//     write causes no index write: nothing was written, and AWS describes the
//     capacity as consumed from the table.
//   - TransactWriteItems: DynamoDB does two underlying writes of each item,
//     one to prepare and one to commit (Developer Guide, transaction-apis,
//     capacity management), so 2 WU per started KB per item. The current
//     version of that page adds that the capacity is consumed even when the
//     transaction is cancelled; the meter charges every item of a cancelled
//     transaction as a failed write, doubled.
//   - A ConditionCheck inside TransactWriteItems: AWS's pages do not price
//     it. The meter charges it as a transactional write of the item it
//     checks (2 WU per started KB, at least 2): the conservative reading (a WU
//     costs five times an RU), and what the conformance suite
//     paritysuite/dynamodb-conformance measured on real DynamoDB (its pull
//     request 67 reports 2 write units for a lone condition check).
//   - Global secondary indexes, from the table's own index definitions
//     (Schema, SchemaOf): a write that puts an item into an index costs a
//     put, one that takes it out a delete, one that changes its index key a
//     delete and a put, one that changes only projected attributes one
//     write, each 1 WU per started KB of the index entry (table key, index
//     key and projected attributes) (Developer Guide, GSI, write capacity
//     units). AWS does not say whether index writes are doubled inside a
//     transaction; the meter assumes they are not, since transactions reach
//     the indexes once, after they complete (transaction-apis).
//   - GetItem: 1 RU per started 4 KB of the item, strongly consistent; half
//     that eventually consistent. BatchGetItem: the same for each item,
//     rounded separately. TransactGetItems: 2 RU per started 4 KB per item.
//     Asking for a subset of attributes does not reduce the size charged
//     (read-write-operations); a missing item still costs the minimum (1 RU
//     strongly consistent, 0.5 eventually, 2 in a transaction, the last as
//     measured by the same conformance suite).
//   - Query and Scan: the sizes of all items read in one response, summed,
//     then rounded up to 4 KB, at least one unit; eventually consistent
//     reads (every read of a global secondary index) cost half. A filter is
//     applied after the items are read, so it does not change the capacity
//     (Developer Guide, Query.FilterExpression). When a filter, projection or
//     Select hides items or attributes, the meter sends the same page again
//     (same key condition, index, order, Limit and start key) without them
//     through the unmetered client and charges what it returns. A Query
//     that reads nothing is charged by consistency and the partitions
//     searched (read-write-operations); the meter charges the 1-unit minimum
//     of one partition.
//
// Local secondary indexes, streams, storage and backups are not modelled.
//
// # Item images and their race
//
// A write's size depends on the item before it, which the request does not
// carry, and an update's on the item after it. The meter reads the before
// images (strongly consistent GetItem, or BatchGetItem for batches and
// transactions) just before sending the write, and the after image of an
// update just after it, through the unmetered client, so the metered
// caller's requests and results are exactly what they would be without the
// meter (only later). Under concurrency another writer may change the item
// between the meter's read and the write, or between the write and the
// after read; the meter then sizes the write from a neighbouring version of
// the same item. The error is the size difference between two versions of
// one item, and matters only when it crosses a 1 KB boundary.
//
// # Tallies
//
// Snapshot totals WU and RU, and breaks them down by operation and item
// kind (Schema.Kind: the partition key's prefix, "RUN", "ORDER", "IDEM",
// ... with the sort key's prefix for items that share a partition,
// "RUN/STEP"; index writes as "index:<name>"). It counts every request by
// service and operation, and billed SQS requests (sqsBilled). The meter's
// own reads are never metered, and a read that fails is counted in
// Snapshot.Errors: then the figures are incomplete.
//
// # Partitions
//
// A DynamoDB partition takes about 1,000 WU a second (Developer Guide,
// partition key design; bursting aside), and each value of an index's
// partition key is a partition of that index. So the meter also attributes
// every write unit it charges to the partition it lands on (Snapshot.Keys):
// a table write, failed or not, to the item's partition key value
// ("RUN#r1", "RATE#alice"); an index write to "index:<name>/<value>", the
// value being the index entry's partition key after the write (before it,
// for an entry deleted), read from the same item images. Each key keeps
// its write units by wall-clock second, so KeyLoad.Peak gives the busiest
// second. Partition keys are not told apart by table: the meter is meant
// for one table. Reads are not attributed.
package meter
