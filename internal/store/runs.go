package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"stepflow/internal/runstate"
	"stepflow/internal/status"
)

// A run is stored as its header (sk "RUN": metadata and the first step
// slots), chunks of further slots (sk "RUN#C01"...) and failed-attempt
// records (sk "RUN#A<step>#<gen%2><attempt>"). The commit record of a step
// with no order effect is an attribute (runstate.RecordName) of the item
// holding its slot; an order action's is the order's history entry. Every
// item of a run carries the generation and, while the run is running,
// "live", so any one of them fences a write. See DECISIONS.md, "Step
// engine", and package runstate.
//
// Each write is named for its precondition, which DynamoDB enforces.

// Attribute names of run items. Expressions refer to them through the
// placeholders in runNames (several are reserved words); slot attributes
// (s0, s1, ...) are used as they are.
const (
	attrStatus    = "status"
	attrGen       = "gen"
	attrLive      = "live"
	attrEndedAt   = "ended_at"
	attrRetries   = "retries"
	attrRetriedAt = "retried_at"
)

// runNames are the expression placeholders of run attributes. None is a
// prefix of another: some emulators substitute placeholders textually.
var runNames = map[string]string{
	"#st": attrStatus, "#gen": attrGen, "#live": attrLive, "#act": attrActive,
	"#ended": attrEndedAt, "#rcount": attrRetries, "#rat": attrRetriedAt, "#tok": attrTok,
	"#ttl": attrTTL,
}

// ErrRunMoved: a claim landed, but a read after it shows the run no longer
// live in the claim's generation (it was cancelled, ended or retried
// between the claim and the read that found it, after its answer was
// lost). The claimed steps must not start. The error is a *RunMovedError.
var ErrRunMoved = errors.New("the claim landed, but the run has since ended or been retried")

// RunMovedError says where the run was found after a claim of it landed
// while its answer was lost.
type RunMovedError struct {
	// Gen is the run's generation as read back.
	Gen int
}

func (e *RunMovedError) Error() string {
	return fmt.Sprintf("%v (the run is in generation %d)", ErrRunMoved, e.Gen)
}

func (e *RunMovedError) Unwrap() error { return ErrRunMoved }

func chunkSK(k int) string { return fmt.Sprintf("RUN#C%02d", k) }

func runItemKey(runID string, k int) map[string]types.AttributeValue {
	pk, sk := runKey(runID)
	if k > 0 {
		sk = chunkSK(k)
	}
	return key(pk, sk)
}

func itemName(runID string, k int) string {
	if k == 0 {
		return "run " + runID + " header"
	}
	return fmt.Sprintf("run %s chunk %d", runID, k)
}

func attemptSK(step, gen, attempt int) string {
	return fmt.Sprintf("RUN#A%03d#%d%02d", step, gen%2, attempt)
}

// runItems returns the items that hold r: its header and chunks.
func runItems(r runstate.State) []map[string]types.AttributeValue {
	n := len(r.Steps)
	items := make([]map[string]types.AttributeValue, runstate.Items(n))
	for k := range items {
		it := runItemKey(r.ID, k)
		it[attrGen] = num(r.Gen)
		if r.Live() {
			it[attrLive] = str("1")
		}
		lo, hi := runstate.ItemSteps(k, n)
		for i := lo; i < hi; i++ {
			it[runstate.SlotName(i)] = str(r.Steps[i].Encode())
		}
		items[k] = it
	}
	h := items[0]
	h[attrID] = str(r.ID)
	h[attrWorkflowID] = str(r.WorkflowID)
	h["workflow_name"] = str(r.WorkflowName)
	if r.OrderID != "" {
		h["order_id"] = str(r.OrderID)
	}
	h[attrStatus] = str(string(r.Status))
	h["created_at"] = ts(r.CreatedAt)
	if !r.EndedAt.IsZero() {
		h[attrEndedAt] = ts(r.EndedAt)
	}
	if !r.RetriedAt.IsZero() {
		h[attrRetriedAt] = ts(r.RetriedAt)
	}
	h[attrRetries] = num(r.Retries)
	h["step_count"] = num(n)
	return items
}

// item readers, tolerant of absent attributes.
// indexKeys adds to run r's header h the sharded keys that place it in
// the indexes: by_kind and by_workflow always, by_active while it is live.
func (s *Store) indexKeys(h map[string]types.AttributeValue, r runstate.State) {
	h[attrKind] = str(s.shardKey(kindRun, r.ID))
	h[attrWorkflowKey] = str(s.shardKey(r.WorkflowID, r.ID))
	if r.Live() {
		h[attrActive] = str(s.shardKey(activeValue, r.ID))
	}
}

func sAttr(item map[string]types.AttributeValue, name string) string {
	v, _ := item[name].(*types.AttributeValueMemberS)
	if v == nil {
		return ""
	}
	return v.Value
}

func nAttr(item map[string]types.AttributeValue, name string) (int, error) {
	v, _ := item[name].(*types.AttributeValueMemberN)
	if v == nil {
		return 0, fmt.Errorf("attribute %s missing", name)
	}
	return strconv.Atoi(v.Value)
}

func tAttr(item map[string]types.AttributeValue, name string) (time.Time, error) {
	v := sAttr(item, name)
	if v == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, v)
}

// RunRef names a run and what a reader of some of its items needs to know
// without its header.
type RunRef struct {
	ID, WorkflowID, OrderID string
	// Steps is the run's step count (its workflow's).
	Steps int
}

// decodeRun rebuilds a run of ref.Steps steps from the items read, by item
// number (0: the header). Slots of items not read are unknown. Without the
// header, the run's status is running if every item read holds it live.
func decodeRun(ref RunRef, items map[int]map[string]types.AttributeValue) (runstate.State, error) {
	bad := func(err error) (runstate.State, error) {
		return runstate.State{}, fmt.Errorf("decode run %s: %w: %w", ref.ID, errUnreadable, err)
	}
	r := runstate.State{ID: ref.ID, WorkflowID: ref.WorkflowID, OrderID: ref.OrderID, Gen: -1}
	live := false
	for n, k := range sortedKeys(items) {
		it := items[k]
		g, err := nAttr(it, attrGen)
		if err != nil {
			return bad(err)
		}
		_, l := it[attrLive]
		if n > 0 && (g != r.Gen || l != live) {
			// Every write of a run's generation or liveness writes all its
			// items in one transaction: items that disagree were read
			// while one was landing.
			return bad(fmt.Errorf("%w: %s in generation %d (live %v), another item in %d (live %v)", errTorn, sAttr(it, attrSK), g, l, r.Gen, live))
		}
		r.Gen, live = g, l
	}
	n := ref.Steps
	if header, ok := items[0]; ok {
		r.WorkflowID, r.WorkflowName = sAttr(header, attrWorkflowID), sAttr(header, "workflow_name")
		r.OrderID, r.Status = sAttr(header, "order_id"), status.RunStatus(sAttr(header, attrStatus))
		var err error
		if r.Retries, err = nAttr(header, attrRetries); err != nil {
			return bad(err)
		}
		if n, err = nAttr(header, "step_count"); err != nil {
			return bad(err)
		}
		for name, dst := range map[string]*time.Time{"created_at": &r.CreatedAt, attrEndedAt: &r.EndedAt, attrRetriedAt: &r.RetriedAt} {
			if *dst, err = tAttr(header, name); err != nil {
				return bad(err)
			}
		}
	} else if live {
		r.Status = status.RunRunning
	}
	if n <= 0 {
		return bad(errors.New("no step count"))
	}
	r.Steps = make([]runstate.Slot, n)
	known := make([]bool, n)
	for _, k := range sortedKeys(items) {
		lo, hi := runstate.ItemSteps(k, n)
		for i := lo; i < hi; i++ {
			v := sAttr(items[k], runstate.SlotName(i))
			if v == "" {
				return bad(fmt.Errorf("slot of step %d missing", i))
			}
			slot, err := runstate.ParseSlot(v)
			if err != nil {
				return bad(err)
			}
			r.Steps[i], known[i] = slot, true
		}
	}
	if !slices.Contains(known, false) {
		known = nil
	}
	r.Known = known
	return r, nil
}

// CreateRunIfAbsent stores a new run. If it names an order that does not
// exist it returns ErrOrderNotFound and writes nothing. A run of more than
// runstate.HeaderSlots steps writes its chunks first; the header, written
// last, is the commit point (readers ignore chunks without a header).
// Every item is put on the condition that it does not exist and carries
// the creation's token, so a put whose answer was lost is recognised as
// this creation's own; only on a real ID collision are the chunks this
// creation wrote deleted again, each on the condition that it still holds
// the token.
//
// input, if not nil, is the run's input (an item of its own, put like a
// chunk).
func (s *Store) CreateRunIfAbsent(ctx context.Context, r runstate.State, input json.RawMessage) error {
	if r.OrderID != "" {
		if _, err := s.get(ctx, orderKey, r.OrderID, true); errors.Is(err, ErrNotFound) {
			return fmt.Errorf("create run %s: %w", r.ID, ErrOrderNotFound)
		} else if err != nil {
			return fmt.Errorf("create run %s: check order: %w", r.ID, err)
		}
	}
	tok := newToken()
	items := runItems(r)
	s.indexKeys(items[0], r)
	if input != nil {
		// Before the header, like a chunk: item number len(items).
		items = append(items, s.withDataTTL(inputItem(r.ID, r.Gen, input, r.CreatedAt), r.CreatedAt))
	}
	name := func(k int) string {
		if k >= runstate.Items(len(r.Steps)) {
			return "run " + r.ID + " input"
		}
		return itemName(r.ID, k)
	}
	var written []int
	undo := func(cause error) error {
		for _, k := range written {
			_, derr := s.db.DeleteItem(context.WithoutCancel(ctx), &dynamodb.DeleteItemInput{
				TableName: aws.String(s.table), Key: map[string]types.AttributeValue{attrPK: items[k][attrPK], attrSK: items[k][attrSK]},
				ConditionExpression:       aws.String("#tok = :tok"),
				ExpressionAttributeNames:  map[string]string{"#tok": attrTok},
				ExpressionAttributeValues: map[string]types.AttributeValue{":tok": str(tok)},
			})
			if derr != nil {
				cause = errors.Join(cause, fmt.Errorf("delete %s: %w", name(k), derr))
			}
		}
		return fmt.Errorf("create run %s: %w", r.ID, cause)
	}
	for k := range items {
		items[k][attrTok] = str(tok)
	}
	for k := 1; k < len(items); k++ {
		if err := s.putIfAbsent(ctx, items[k], attrTok, tok, name(k)); err != nil {
			return undo(err)
		}
		written = append(written, k)
	}
	err := s.putIfAbsent(ctx, items[0], attrTok, tok, itemName(r.ID, 0))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrConflict):
		// Another run's header: this creation's chunks are orphans.
		return undo(err)
	default:
		// The header may have landed: its chunks stay.
		return fmt.Errorf("create run %s: %w", r.ID, err)
	}
}

// LoadItems is the runner's read: items (by number, 0 for the header) of
// run ref, and its order's status if ref.OrderID is set, with one
// consistent BatchGetItem. Slots of other items are unknown. It returns
// ErrNotFound if an item does not exist.
func (s *Store) LoadItems(ctx context.Context, ref RunRef, items []int) (runstate.State, status.OrderStatus, error) {
	for try := 1; ; try++ {
		r, o, err := s.loadItems(ctx, ref, items)
		if !errors.Is(err, errTorn) || try == tornTries {
			return r, o, err
		}
	}
}

// LoadRun reads every item of run ref and its order's status (see
// LoadItems).
func (s *Store) LoadRun(ctx context.Context, ref RunRef) (runstate.State, status.OrderStatus, error) {
	all := make([]int, runstate.Items(ref.Steps))
	for k := range all {
		all[k] = k
	}
	return s.LoadItems(ctx, ref, all)
}

func (s *Store) loadItems(ctx context.Context, ref RunRef, items []int) (runstate.State, status.OrderStatus, error) {
	keys := make([]map[string]types.AttributeValue, 0, len(items)+1)
	for _, k := range items {
		keys = append(keys, runItemKey(ref.ID, k))
	}
	if ref.OrderID != "" {
		keys = append(keys, key(orderKey(ref.OrderID)))
	}
	got, err := s.batchGet(ctx, keys, true)
	if err != nil {
		return runstate.State{}, "", fmt.Errorf("load run %s: %w", ref.ID, err)
	}
	byItem := map[int]map[string]types.AttributeValue{}
	for n, k := range items {
		it, ok := got[itemKey(keys[n])]
		if !ok {
			return runstate.State{}, "", fmt.Errorf("load %s: %w", itemName(ref.ID, k), ErrNotFound)
		}
		byItem[k] = it
	}
	r, err := decodeRun(ref, byItem)
	if err != nil {
		return r, "", err
	}
	var order status.OrderStatus
	if ref.OrderID != "" {
		it := got[itemKey(keys[len(keys)-1])]
		order = status.OrderStatus(sAttr(it, attrStatus))
		r.OrderHold = holdOf(it)
	}
	return r, order, nil
}

// ReadRun reads a run's header, chunks and failed-attempt records with one
// Query (not its inputs and outputs). It returns ErrNotFound if the run does
// not exist.
func (s *Store) ReadRun(ctx context.Context, runID string, consistent bool) (runstate.State, []runstate.Failure, error) {
	for try := 1; ; try++ {
		r, fs, _, err := s.readRun(ctx, runID, consistent, false)
		if !errors.Is(err, errTorn) || try == tornTries {
			return r, fs, err
		}
	}
}

// ReadRunData is ReadRun with the run's inputs and its steps' outputs,
// read by the same Query.
func (s *Store) ReadRunData(ctx context.Context, runID string, consistent bool) (runstate.State, []runstate.Failure, RunData, error) {
	for try := 1; ; try++ {
		r, fs, d, err := s.readRun(ctx, runID, consistent, true)
		if !errors.Is(err, errTorn) || try == tornTries {
			return r, fs, d, err
		}
	}
}

// errTorn: a read saw a run's items in different generations. Reads of
// several items are not isolated from a transaction writing them (DynamoDB
// gives read-committed per item), so a read racing a retry can see the new
// header beside an old chunk; it is read again.
var errTorn = errors.New("run items read in different generations")

// errUnreadable: a run's items cannot be decoded (an item missing or
// malformed). Lists, statistics and the sweeper skip such a run.
var errUnreadable = errors.New("unreadable run")

// IsUnreadable reports whether err says a run's items cannot be decoded.
func IsUnreadable(err error) bool { return errors.Is(err, errUnreadable) }

// tornTries bounds the reads of a run that keep seeing mixed generations.
const tornTries = 5

func (s *Store) readRun(ctx context.Context, runID string, consistent, withData bool) (runstate.State, []runstate.Failure, RunData, error) {
	pk, sk := runKey(runID)
	in := s.prefixQuery(pk, sk, consistent)
	if !withData {
		// The header, the attempt records and the chunks sort before
		// the inputs and outputs (RUN#I, RUN#O): leave those unread.
		in.KeyConditionExpression = aws.String("pk = :pk AND sk BETWEEN :prefix AND :hi")
		in.ExpressionAttributeValues[":hi"] = str("RUN#D")
	}
	items := map[int]map[string]types.AttributeValue{}
	var failures []runstate.Failure
	var data RunData
	now := s.now()
	fail := func(err error) (runstate.State, []runstate.Failure, RunData, error) {
		return runstate.State{}, nil, RunData{}, fmt.Errorf("read run %s: %w", runID, err)
	}
	for {
		res, err := s.db.Query(ctx, in)
		if err != nil {
			return fail(err)
		}
		for _, it := range res.Items {
			k := sAttr(it, attrSK)
			if k != sk && expired(it, now) {
				continue // a record or data item past its ttl is gone; the header decides for the run
			}
			switch {
			case k == sk:
				items[0] = it
			case strings.HasPrefix(k, "RUN#C"):
				n, err := strconv.Atoi(k[len("RUN#C"):])
				if err != nil || n < 1 {
					return fail(fmt.Errorf("bad chunk key %q", k))
				}
				items[n] = it
			case strings.HasPrefix(k, "RUN#A"):
				f, err := decodeFailure(it)
				if err != nil {
					return fail(err)
				}
				failures = append(failures, f)
			default:
				if _, err := data.collect(k, it); err != nil {
					return fail(err)
				}
			}
		}
		if res.LastEvaluatedKey == nil {
			break
		}
		in.ExclusiveStartKey = res.LastEvaluatedKey
	}
	if items[0] == nil || expired(items[0], now) {
		return fail(ErrNotFound)
	}
	data.Expires = expiresAt(items[0])
	r, err := decodeWhole(runID, items)
	data.Inputs = sortedInputs(data.Inputs)
	return r, failures, data, err
}

// decodeWhole decodes a run read whole: every item its header's step count
// calls for must be there.
func decodeWhole(runID string, items map[int]map[string]types.AttributeValue) (runstate.State, error) {
	n, err := nAttr(items[0], "step_count")
	if err != nil {
		return runstate.State{}, fmt.Errorf("decode run %s: %w: %w", runID, errUnreadable, err)
	}
	for k := range runstate.Items(n) {
		if items[k] == nil {
			return runstate.State{}, fmt.Errorf("decode run %s: %w: %s missing", runID, errUnreadable, itemName(runID, k))
		}
	}
	return decodeRun(RunRef{ID: runID, Steps: n}, items)
}

func failureItem(runID string, f runstate.Failure) map[string]types.AttributeValue {
	pk, _ := runKey(runID)
	it := key(pk, attemptSK(f.Step, f.Gen, f.Attempt))
	it["step"], it[attrGen], it["attempt"] = num(f.Step), num(f.Gen), num(f.Attempt)
	it["started_at"], it[attrEndedAt] = ts(f.Start), ts(f.End)
	msg := f.Error
	if len(msg) > maxErrorBytes {
		msg = msg[:maxErrorBytes] + "…"
	}
	it["error"] = str(msg)
	return it
}

// maxErrorBytes bounds the error text an attempt record keeps.
const maxErrorBytes = 1024

func decodeFailure(it map[string]types.AttributeValue) (runstate.Failure, error) {
	var f runstate.Failure
	var err error
	if f.Step, err = nAttr(it, "step"); err != nil {
		return f, err
	}
	if f.Gen, err = nAttr(it, attrGen); err != nil {
		return f, err
	}
	if f.Attempt, err = nAttr(it, "attempt"); err != nil {
		return f, err
	}
	if f.Start, err = tAttr(it, "started_at"); err != nil {
		return f, err
	}
	if f.End, err = tAttr(it, attrEndedAt); err != nil {
		return f, err
	}
	f.Error = sAttr(it, "error")
	return f, nil
}

// Fence reads a run's generation and whether it is live, consistently: the
// check a runner makes before starting steps that no claim covers.
func (s *Store) Fence(ctx context.Context, runID string) (gen int, live bool, err error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table), Key: runItemKey(runID, 0), ConsistentRead: aws.Bool(true),
		ProjectionExpression:     aws.String("#gen, #live"),
		ExpressionAttributeNames: map[string]string{"#gen": attrGen, "#live": attrLive},
	})
	if err != nil {
		return 0, false, fmt.Errorf("fence run %s: %w", runID, err)
	}
	if out.Item == nil {
		return 0, false, fmt.Errorf("fence run %s: %w", runID, ErrNotFound)
	}
	gen, err = nAttr(out.Item, attrGen)
	_, live = out.Item[attrLive]
	return gen, live, err
}

// update builds one item's part of a write: SET and REMOVE clauses and AND
// conditions, with their values, and what the conditions mean.
type update struct {
	set, remove, cond []string
	values            map[string]types.AttributeValue
	why               []string
}

func newUpdate() *update { return &update{values: map[string]types.AttributeValue{}} }

// swap writes a slot on the condition that it holds the old state.
func (u *update) swap(sw runstate.Swap) {
	slot := runstate.SlotName(sw.Step)
	o, n := fmt.Sprintf(":o%03d", sw.Step), fmt.Sprintf(":n%03d", sw.Step)
	if sw.New != sw.Old {
		u.set = append(u.set, slot+" = "+n)
		u.values[n] = str(sw.New.Encode())
	}
	u.cond = append(u.cond, slot+" = "+o)
	u.values[o] = str(sw.Old.Encode())
	u.why = append(u.why, fmt.Sprintf("step %d still %s", sw.Step, sw.Old.Encode()))
}

// liveIn adds the condition that the run is live in generation gen.
func (u *update) liveIn(gen int) {
	u.cond = append(u.cond, "#gen = :g", "attribute_exists(#live)")
	u.values[":g"] = num(gen)
	u.why = append(u.why, fmt.Sprintf("run live in generation %d", gen))
}

// inGen adds the condition that the run is in generation gen.
func (u *update) inGen(gen int) {
	u.cond = append(u.cond, "#gen = :g")
	u.values[":g"] = num(gen)
	u.why = append(u.why, fmt.Sprintf("run in generation %d", gen))
}

// describe says what the item's conditions require.
func (u *update) describe(item string) string {
	if len(u.why) == 0 {
		return item
	}
	return item + " (requires " + strings.Join(u.why, ", ") + ")"
}

func (u *update) expression() *string {
	var parts []string
	if len(u.set) > 0 {
		parts = append(parts, "SET "+strings.Join(u.set, ", "))
	}
	if len(u.remove) > 0 {
		parts = append(parts, "REMOVE "+strings.Join(u.remove, ", "))
	}
	return aws.String(strings.Join(parts, " "))
}

// names returns the placeholders an update uses.
func (u *update) names() map[string]string {
	all := strings.Join(append(append(append([]string{}, u.set...), u.remove...), u.cond...), " ")
	out := map[string]string{}
	for p, n := range runNames {
		if strings.Contains(all, p) {
			out[p] = n
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func (u *update) item(table string, k map[string]types.AttributeValue) *types.Update {
	up := &types.Update{
		TableName: aws.String(table), Key: k, UpdateExpression: u.expression(),
		ExpressionAttributeNames: u.names(),
	}
	if len(u.values) > 0 {
		up.ExpressionAttributeValues = u.values
	}
	if len(u.cond) > 0 {
		up.ConditionExpression = aws.String(strings.Join(u.cond, " AND "))
	}
	return up
}

func (s *Store) updateItem(ctx context.Context, k map[string]types.AttributeValue, u *update, what string) error {
	up := u.item(s.table, k)
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: up.TableName, Key: up.Key, UpdateExpression: up.UpdateExpression,
		ConditionExpression: up.ConditionExpression, ExpressionAttributeNames: up.ExpressionAttributeNames,
		ExpressionAttributeValues: up.ExpressionAttributeValues,
	})
	err = invalidErr(conditionErr(err))
	if errors.Is(err, ErrConflict) {
		return fmt.Errorf("%w: %s", err, u.describe(what))
	}
	return err
}

// byItem groups swaps by the item holding their slots.
func byItem(swaps []runstate.Swap) map[int][]runstate.Swap {
	out := map[int][]runstate.Swap{}
	for _, sw := range swaps {
		k := runstate.ItemOf(sw.Step)
		out[k] = append(out[k], sw)
	}
	return out
}

func sortedKeys[V any](m map[int]V) []int {
	ks := make([]int, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// writeItems writes the updates of a run's items: one UpdateItem for a
// single item, else one transaction, so the write is all or nothing and
// takes effect at one instant.
func (s *Store) writeItems(ctx context.Context, runID string, updates map[int]*update, token string, opts ...func(*dynamodb.Options)) error {
	return s.writeItemsAnd(ctx, runID, updates, nil, token, opts...)
}

// writeItemsAnd is writeItems with items to put in the same transaction.
func (s *Store) writeItemsAnd(ctx context.Context, runID string, updates map[int]*update, puts *txn, token string, opts ...func(*dynamodb.Options)) error {
	keys := sortedKeys(updates)
	if len(keys) == 1 && (puts == nil || len(puts.items) == 0) {
		return s.updateItem(ctx, runItemKey(runID, keys[0]), updates[keys[0]], itemName(runID, keys[0]))
	}
	t := &txn{}
	for _, k := range keys {
		u := updates[k]
		t.add(types.TransactWriteItem{Update: u.item(s.table, runItemKey(runID, k))}, u.describe(itemName(runID, k)))
	}
	if puts != nil {
		for n, it := range puts.items {
			t.add(it, puts.what[n])
		}
	}
	return s.writeTxn(ctx, t, token, opts...)
}

// slotsHold reads the items of swaps and reports whether every slot holds
// its swap's new state (the write that made them landed, even if its
// answer was lost), and whether every item read holds the run live in
// generation gen.
func (s *Store) slotsHold(ctx context.Context, runID string, swaps []runstate.Swap, gen int) (landed, liveInGen bool, genRead int, err error) {
	var keys []map[string]types.AttributeValue
	for _, k := range sortedKeys(byItem(swaps)) {
		keys = append(keys, runItemKey(runID, k))
	}
	got, err := s.batchGet(ctx, keys, true)
	if err != nil {
		return false, false, 0, err
	}
	liveInGen = true
	for _, k := range keys {
		it := got[itemKey(k)]
		if it == nil {
			return false, false, 0, nil
		}
		g, _ := nAttr(it, attrGen)
		_, live := it[attrLive]
		liveInGen, genRead = liveInGen && live && g == gen, g
	}
	for _, sw := range swaps {
		it := got[itemKey(runItemKey(runID, runstate.ItemOf(sw.Step)))]
		if sAttr(it, runstate.SlotName(sw.Step)) != sw.New.Encode() {
			return false, liveInGen, genRead, nil
		}
	}
	return true, liveInGen, genRead, nil
}

// ClaimIfLive writes claim c, on the condition that the run is live in
// c.Gen and every claimed slot is still as read: one UpdateItem when the
// slots share an item, else one transaction, so a claim is all or nothing
// and takes effect at one instant. A refused claim is ErrConflict. A claim
// whose answer was lost is read back: if it landed it succeeds, unless the
// read shows the run no longer live in c.Gen (ErrRunMoved: it was
// cancelled or retried after the claim, and the caller, which has not
// started the steps, must not; see runstate.Release).
func (s *Store) ClaimIfLive(ctx context.Context, c runstate.Claim) error {
	updates := map[int]*update{}
	for k, swaps := range byItem(c.Swaps) {
		u := newUpdate()
		u.liveIn(c.Gen)
		for _, sw := range swaps {
			u.swap(sw)
		}
		updates[k] = u
	}
	// A claim's lost answer must surface to be read back, never be hidden
	// by a retry: the SDK's own retry of a transaction reuses its
	// idempotency token and "succeeds" even when the run was cancelled
	// after the claim landed.
	err := s.writeItems(ctx, c.RunID, updates, "", func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 })
	if err == nil {
		return nil
	}
	if !landedOrNot(err) {
		return fmt.Errorf("claim steps of run %s: %w", c.RunID, err)
	}
	var landed, live bool
	var gen int
	if _, rerr := readBack(ctx, func() (bool, error) {
		var err error
		landed, live, gen, err = s.slotsHold(ctx, c.RunID, c.Swaps, c.Gen)
		return landed, err
	}); rerr != nil {
		return fmt.Errorf("claim steps of run %s: %w: %v; reading it back: %v", c.RunID, ErrUnknown, err, rerr)
	}
	switch {
	case landed && live:
		return nil
	case landed:
		return fmt.Errorf("claim steps of run %s: %w", c.RunID, &RunMovedError{Gen: gen})
	}
	return fmt.Errorf("claim steps of run %s: %w", c.RunID, err)
}

// ReleaseIfHeld writes swaps (each from the running slot a claim wrote back
// to the state before it), on the condition that each slot still holds the
// claim. A refused release is ErrConflict.
func (s *Store) ReleaseIfHeld(ctx context.Context, runID string, swaps []runstate.Swap) error {
	updates := map[int]*update{}
	for k, sws := range byItem(swaps) {
		u := newUpdate()
		for _, sw := range sws {
			u.swap(sw)
		}
		updates[k] = u
	}
	err := s.writeItems(ctx, runID, updates, "")
	if landedOrNot(err) {
		landed, rerr := readBack(ctx, func() (bool, error) {
			landed, _, _, err := s.slotsHold(ctx, runID, swaps, -1)
			return landed, err
		})
		switch {
		case rerr != nil:
			return fmt.Errorf("release steps of run %s: %w: %v; reading it back: %v", runID, ErrUnknown, err, rerr)
		case landed:
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("release steps of run %s: %w", runID, err)
	}
	return nil
}

// endRunUpdates adds to header and to the chunks' updates what ending the
// run as to at writes: its status and end, out of by_active, and the time
// DynamoDB may delete its items (retention after the end).
func (s *Store) endRunUpdates(header *update, chunks map[int]*update, items int, to status.RunStatus, at time.Time) {
	header.set = append(header.set, "#st = :end", "#ended = :at", "#ttl = :ttl")
	header.remove = append(header.remove, "#live", "#act")
	header.values[":end"], header.values[":at"], header.values[":ttl"] = str(string(to)), ts(at), epoch(at.Add(s.retention))
	for k := 1; k < items; k++ {
		if chunks[k] == nil {
			chunks[k] = newUpdate()
		}
		chunks[k].remove = append(chunks[k].remove, "#live")
		chunks[k].set = append(chunks[k].set, "#ttl = :ttl")
		chunks[k].values[":ttl"] = header.values[":ttl"]
	}
}

// CommitIfHeld writes commit c in one transaction: each step's commit
// record, put on the condition that it does not exist (for an order action,
// the order's history entry, an item of its own; for any other step, an
// attribute of the item holding its slot, which the commit writes anyway);
// each failed attempt's record; each slot swapped on the condition that it
// is still the one the runner held; the order's status on the condition
// that it is c.Order.From; if c ends the run, the header's status on the
// condition that the run is still running; and if c.SameGen, the condition
// that the run is still in generation c.Gen. token identifies the commit
// (in its records, and as the idempotency token of the transaction). A
// commit whose answer was lost is read back: a transaction lands whole, so
// it landed if its first slot holds what it wrote. A refused commit is
// ErrConflict naming the item that failed and why; one DynamoDB refuses as
// invalid is ErrInvalid.
func (s *Store) CommitIfHeld(ctx context.Context, c runstate.Commit, token string) error {
	if len(c.Swaps) == 0 {
		return nil
	}
	t := &txn{}
	put := func(it map[string]types.AttributeValue, cond, what string) {
		p := &types.Put{TableName: aws.String(s.table), Item: it}
		if cond != "" {
			p.ConditionExpression = aws.String(cond)
		}
		t.add(types.TransactWriteItem{Put: p}, what)
	}
	updates := map[int]*update{}
	updateOf := func(k int) *update {
		if updates[k] == nil {
			updates[k] = newUpdate()
		}
		return updates[k]
	}
	for _, sw := range c.Swaps {
		updateOf(runstate.ItemOf(sw.Step)).swap(sw)
	}
	record := recordValue(token, c.At)
	for _, d := range c.Done {
		if d.Output != nil {
			put(s.withDataTTL(outputItem(c.RunID, d, token), c.At), "attribute_not_exists(pk)",
				fmt.Sprintf("run %s output of step %d (requires none yet)", c.RunID, d.Step))
			if d.History == nil {
				continue // the output is the commit record
			}
		}
		if d.History == nil {
			u := updateOf(runstate.ItemOf(d.Step))
			name, v := runstate.RecordName(d.Step), fmt.Sprintf(":d%03d", d.Step)
			u.set = append(u.set, name+" = "+v)
			u.cond = append(u.cond, "attribute_not_exists("+name+")")
			u.values[v] = str(record)
			u.why = append(u.why, fmt.Sprintf("step %d not committed yet", d.Step))
			continue
		}
		h := d.History
		it := historyItem(c.OrderID, historySK(c.RunID, d.Step), historyRecord{
			At: h.At, Event: h.Event, From: h.From, To: h.To, RunID: h.RunID, StepID: h.StepID,
		})
		it["attempt"], it["token"], it[attrTTL] = num(d.Attempt), str(token), epoch(c.At.Add(s.retention))
		put(it, "attribute_not_exists(pk)", fmt.Sprintf("order %s history entry of step %d (requires none yet)", c.OrderID, d.Step))
	}
	for _, f := range c.Failures {
		it := failureItem(c.RunID, f)
		it["token"] = str(token)
		s.withDataTTL(it, c.At)
		put(it, "", fmt.Sprintf("run %s attempt record of step %d", c.RunID, f.Step))
	}
	for _, w := range c.Waits {
		if w.Callback != "" {
			put(s.withDataTTL(callbackItem(c.RunID, w), c.At), "attribute_not_exists(pk)", fmt.Sprintf("callback of run %s step %d (requires a new token)", c.RunID, w.Step))
		}
	}
	for _, h := range c.Resolved {
		t.add(types.TransactWriteItem{Delete: &types.Delete{TableName: aws.String(s.table), Key: callbackKey(h)}}, fmt.Sprintf("callback of run %s", c.RunID))
	}
	if c.End != "" {
		header := updateOf(0)
		header.cond = append(header.cond, "#st = :running")
		header.values[":running"] = str(string(status.RunRunning))
		header.why = append(header.why, "run still running")
		s.endRunUpdates(header, updates, c.Items, c.End, c.At)
	}
	switch {
	case c.Live:
		updateOf(sortedKeys(updates)[0]).liveIn(c.Gen)
	case c.SameGen:
		// Every item of the run carries its generation: condition the
		// first item the commit writes.
		updateOf(sortedKeys(updates)[0]).inGen(c.Gen)
	}
	for _, k := range sortedKeys(updates) {
		t.add(types.TransactWriteItem{Update: updates[k].item(s.table, runItemKey(c.RunID, k))}, updates[k].describe(itemName(c.RunID, k)))
	}
	if o := c.Order; o != nil {
		u := newUpdate()
		// Moving the order ends any reservation of it (see
		// ReserveOrderIfFree) and records which run moved it; another
		// run's live reservation refuses it (its call may be at the
		// service right now).
		u.set = append(u.set, "#st = :to", "updated_at = :at", attrByRun+" = :by")
		u.remove = append(u.remove, attrResRun, attrResStep, attrResUntil)
		u.cond = append(u.cond, "#st = :from", "(attribute_not_exists("+attrResRun+") OR "+attrResRun+" = :by OR "+attrResUntil+" < :now)")
		u.values[":to"], u.values[":from"], u.values[":at"], u.values[":by"] = str(string(o.To)), str(string(o.From)), ts(c.At), str(c.RunID)
		u.values[":now"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(c.At.UnixMilli(), 10)}
		t.add(types.TransactWriteItem{Update: u.item(s.table, key(orderKey(o.OrderID)))}, fmt.Sprintf("order %s (requires status %s and no other run's reservation)", o.OrderID, o.From))
	}
	err := s.writeTxn(ctx, t, token)
	if landedOrNot(err) {
		landed, rerr := readBack(ctx, func() (bool, error) { return s.commitLanded(ctx, c, token) })
		switch {
		case rerr != nil:
			return fmt.Errorf("commit steps of run %s: %w: %v; reading it back: %v", c.RunID, ErrUnknown, err, rerr)
		case landed:
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("commit steps of run %s: %w", c.RunID, err)
	}
	return nil
}

// commitLanded reports whether commit c (of token) is in storage. A
// transaction lands whole, so one of its writes tells: a commit record or a
// failed attempt's record, which carry the commit's token and are never
// rewritten (a slot may have moved on since: a retry of the run resets it),
// or, for a commit of claims only, the claimed slots.
func (s *Store) commitLanded(ctx context.Context, c runstate.Commit, token string) (bool, error) {
	switch {
	case len(c.Done) > 0 && c.Done[0].Output != nil:
		pk, _ := runKey(c.RunID)
		_, ours, err := s.holds(ctx, key(pk, outputSK(c.Done[0].Step)), "token", token)
		return ours, err
	case len(c.Done) > 0 && c.Done[0].History == nil:
		d := c.Done[0]
		_, ours, err := s.holds(ctx, runItemKey(c.RunID, runstate.ItemOf(d.Step)), runstate.RecordName(d.Step), recordValue(token, c.At))
		return ours, err
	case len(c.Done) > 0:
		pk, _ := orderKey(c.OrderID)
		_, ours, err := s.holds(ctx, key(pk, historyPrefix+historySK(c.RunID, c.Done[0].Step)), "token", token)
		return ours, err
	case len(c.Failures) > 0:
		f := c.Failures[0]
		pk, _ := runKey(c.RunID)
		_, ours, err := s.holds(ctx, key(pk, attemptSK(f.Step, f.Gen, f.Attempt)), "token", token)
		return ours, err
	}
	landed, _, _, err := s.slotsHold(ctx, c.RunID, c.Swaps, -1)
	return landed, err
}

// recordValue is a commit record stored as an attribute: the commit's
// token (its last 8 characters, random) and time.
func recordValue(token string, at time.Time) string {
	return token[max(0, len(token)-8):] + ":" + strconv.FormatInt(at.UnixMilli(), 36)
}

// EndRunIfRunning writes e: the run ends as e.To and stops accepting
// claims, on the condition that it is still running in generation e.Gen.
// It returns ErrConflict if it is not; an end whose answer was lost is
// recognised by its token.
func (s *Store) EndRunIfRunning(ctx context.Context, e runstate.End) error {
	tok := newToken()[:8] // short: the header stays under 1 KB
	header, chunks := newUpdate(), map[int]*update{}
	header.inGen(e.Gen)
	header.cond = append(header.cond, "#st = :running")
	header.why = append(header.why, "run still running")
	header.values[":running"] = str(string(status.RunRunning))
	header.set = append(header.set, endTokAttr(e.Gen)+" = :tok")
	header.values[":tok"] = str(tok)
	s.endRunUpdates(header, chunks, e.Items, e.To, e.At)
	for _, u := range chunks {
		u.inGen(e.Gen)
	}
	chunks[0] = header
	if err := s.runLevelWrite(ctx, e.RunID, chunks, nil, endTokAttr(e.Gen), tok); err != nil {
		return fmt.Errorf("end run %s as %s: %w", e.RunID, e.To, err)
	}
	return nil
}

// The header keeps the token of each generation's end and of the retry out
// of it, for the last keptTokenGens generations: a later end or retry does
// not overwrite them, so a writer whose answer was lost still finds its
// own token when another writer has acted since.
const keptTokenGens = 2

func endTokAttr(gen int) string   { return "xe" + strconv.Itoa(gen) }
func retryTokAttr(gen int) string { return "xr" + strconv.Itoa(gen) }

// RetryRunIfEnded writes retry rs: the run becomes running in the next
// generation with the swapped slots as rs says, on the condition that it is
// still in status rs.From in generation rs.Gen and each swapped slot is
// still as read (kept slots included). It returns ErrConflict if not; a
// retry whose answer was lost is recognised by its token. The write is one
// transaction of at most runstate.Items(100) = 7 items.
func (s *Store) RetryRunIfEnded(ctx context.Context, rs runstate.Reset) error {
	tok := newToken()[:8] // short: the header stays under 1 KB
	updates := map[int]*update{0: newUpdate()}
	for k := 1; k < rs.Items; k++ {
		updates[k] = newUpdate()
	}
	for k, swaps := range byItem(rs.Swaps) {
		for _, sw := range swaps {
			updates[k].swap(sw)
		}
	}
	for k := 1; k < rs.Items; k++ {
		u := updates[k]
		u.set = append(u.set, "#gen = :g1", "#live = :one")
		u.remove = append(u.remove, "#ttl")
		u.inGen(rs.Gen)
		u.values[":g1"], u.values[":one"] = num(rs.Gen+1), str("1")
	}
	header := updates[0]
	header.set = append(header.set, "#gen = :g1", "#live = :one", "#st = :running", "#act = :active",
		"#rcount = #rcount + :inc", "#rat = :at", retryTokAttr(rs.Gen)+" = :tok")
	header.remove = append(header.remove, "#ended", "#ttl")
	if old := rs.Gen - keptTokenGens; old >= 0 {
		header.remove = append(header.remove, endTokAttr(old), retryTokAttr(old))
	}
	header.inGen(rs.Gen)
	header.cond = append(header.cond, "#st = :from")
	header.why = append(header.why, "run still "+string(rs.From))
	for k, v := range map[string]types.AttributeValue{
		":g1": num(rs.Gen + 1), ":one": str("1"), ":running": str(string(status.RunRunning)),
		":active": str(s.shardKey(activeValue, rs.RunID)), ":inc": num(1), ":at": ts(rs.At), ":from": str(string(rs.From)), ":tok": str(tok),
	} {
		header.values[k] = v
	}
	var puts *txn
	if rs.Input != nil {
		puts = &txn{}
		puts.add(types.TransactWriteItem{Put: &types.Put{TableName: aws.String(s.table), Item: s.withDataTTL(inputItem(rs.RunID, rs.Gen+1, rs.Input, rs.At), rs.At)}},
			fmt.Sprintf("run %s input of generation %d", rs.RunID, rs.Gen+1))
	}
	if err := s.runLevelWrite(ctx, rs.RunID, updates, puts, retryTokAttr(rs.Gen), tok); err != nil {
		return fmt.Errorf("retry run %s: %w", rs.RunID, err)
	}
	return nil
}

// runLevelWrite writes a run-level change whose header update sets the
// token tok in attribute attr; after a failure or a lost answer, the header
// is read back and the write landed if it holds tok there.
func (s *Store) runLevelWrite(ctx context.Context, runID string, updates map[int]*update, puts *txn, attr, tok string) error {
	err := s.writeItemsAnd(ctx, runID, updates, puts, "")
	if !landedOrNot(err) {
		return err
	}
	ours, rerr := readBack(ctx, func() (bool, error) {
		_, ours, err := s.holds(ctx, runItemKey(runID, 0), attr, tok)
		return ours, err
	})
	switch {
	case rerr != nil:
		return fmt.Errorf("%w: %v; reading it back: %v", ErrUnknown, err, rerr)
	case ours:
		return nil
	}
	return err
}
