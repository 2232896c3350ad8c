package store

import (
	"context"
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
	"stepflow/internal/wire"
)

// A run is stored as its header (sk "RUN": metadata and the first step
// slots), chunks of further slots (sk "RUN#C01"...) and failed-attempt
// records (sk "RUN#A<step>#<gen%2><attempt>"). The commit record of a step
// with no order effect is an attribute (runstate.RecordName) of the item
// holding its slot; an order action's is the order's history entry. See
// DECISIONS.md, "Step engine (second design)", and package runstate.

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
	"#ended": attrEndedAt, "#rcount": attrRetries, "#rat": attrRetriedAt,
}

func chunkSK(k int) string { return fmt.Sprintf("RUN#C%02d", k) }

func runItemKey(runID string, k int) map[string]types.AttributeValue {
	pk, sk := runKey(runID)
	if k > 0 {
		sk = chunkSK(k)
	}
	return key(pk, sk)
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
	h[attrKind] = str(kindRun)
	h[attrID] = str(r.ID)
	h[attrWorkflowID] = str(r.WorkflowID)
	h["workflow_name"] = str(r.WorkflowName)
	if r.OrderID != "" {
		h["order_id"] = str(r.OrderID)
	}
	h[attrStatus] = str(string(r.Status))
	if r.Live() {
		h[attrActive] = str(activeValue)
	}
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

// decodeRun rebuilds a run from its header and chunk items (any order).
func decodeRun(runID string, header map[string]types.AttributeValue, chunks []map[string]types.AttributeValue) (runstate.State, error) {
	r := runstate.State{
		ID: runID, WorkflowID: sAttr(header, attrWorkflowID), WorkflowName: sAttr(header, "workflow_name"),
		OrderID: sAttr(header, "order_id"), Status: status.RunStatus(sAttr(header, attrStatus)),
	}
	bad := func(err error) (runstate.State, error) {
		return runstate.State{}, fmt.Errorf("decode run %s: %w", runID, err)
	}
	var err error
	if r.Gen, err = nAttr(header, attrGen); err != nil {
		return bad(err)
	}
	if r.Retries, err = nAttr(header, attrRetries); err != nil {
		return bad(err)
	}
	n, err := nAttr(header, "step_count")
	if err != nil {
		return bad(err)
	}
	for name, dst := range map[string]*time.Time{"created_at": &r.CreatedAt, attrEndedAt: &r.EndedAt, attrRetriedAt: &r.RetriedAt} {
		if *dst, err = tAttr(header, name); err != nil {
			return bad(err)
		}
	}
	for _, c := range chunks {
		if g, err := nAttr(c, attrGen); err != nil || g != r.Gen {
			return bad(fmt.Errorf("%w: chunk %s in generation %d, header in %d", errTorn, sAttr(c, attrSK), g, r.Gen))
		}
	}
	r.Steps = make([]runstate.Slot, n)
	seen := make([]bool, n)
	for _, it := range append([]map[string]types.AttributeValue{header}, chunks...) {
		for name, av := range it {
			idx, ok := strings.CutPrefix(name, "s")
			i, err := strconv.Atoi(idx)
			if !ok || err != nil || name != runstate.SlotName(i) {
				continue
			}
			if i < 0 || i >= n {
				return bad(fmt.Errorf("slot %s beyond %d steps", name, n))
			}
			v, _ := av.(*types.AttributeValueMemberS)
			if v == nil {
				return bad(fmt.Errorf("slot %s is not a string", name))
			}
			if r.Steps[i], err = runstate.ParseSlot(v.Value); err != nil {
				return bad(err)
			}
			seen[i] = true
		}
	}
	if i := slices.Index(seen, false); i >= 0 {
		return bad(fmt.Errorf("slot of step %d missing", i))
	}
	return r, nil
}

// CreateRun stores a new run. If it names an order that does not exist it
// returns ErrOrderNotFound and writes nothing. A run of more than
// runstate.HeaderSlots steps writes its chunks first; the header, written
// last with attribute_not_exists, is the commit point (readers ignore
// chunks without a header), and chunks of a failed creation are deleted.
func (s *Store) CreateRun(ctx context.Context, r runstate.State) error {
	if r.OrderID != "" {
		if _, err := s.get(ctx, orderKey, r.OrderID, true); errors.Is(err, ErrNotFound) {
			return fmt.Errorf("create run %s: %w", r.ID, ErrOrderNotFound)
		} else if err != nil {
			return fmt.Errorf("create run %s: check order: %w", r.ID, err)
		}
	}
	items := runItems(r)
	var chunks []types.WriteRequest
	for _, it := range items[1:] {
		chunks = append(chunks, types.WriteRequest{PutRequest: &types.PutRequest{Item: it}})
	}
	if err := s.batchWrite(ctx, chunks); err != nil {
		return fmt.Errorf("create run %s: write chunks: %w", r.ID, err)
	}
	err := s.putNew(ctx, items[0], "run "+r.ID)
	var ccf *types.ConditionalCheckFailedException
	if err != nil && errors.As(err, &ccf) && len(chunks) > 0 {
		// Only a definite refusal (an ID that exists) cleans up: after an
		// ambiguous failure the header may have landed.
		var dels []types.WriteRequest
		for k := 1; k < len(items); k++ {
			dels = append(dels, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: runItemKey(r.ID, k)}})
		}
		if derr := s.batchWrite(context.WithoutCancel(ctx), dels); derr != nil {
			err = errors.Join(err, fmt.Errorf("delete orphan chunks: %w", derr))
		}
	}
	return err
}

// LoadRun is the runner's read: a run of steps steps (its header and chunks)
// and its order's status (if orderID is set), with one consistent
// BatchGetItem. It returns ErrNotFound if the run does not exist.
func (s *Store) LoadRun(ctx context.Context, runID string, steps int, orderID string) (runstate.State, status.OrderStatus, error) {
	for try := 1; ; try++ {
		r, o, err := s.loadRun(ctx, runID, steps, orderID)
		if !errors.Is(err, errTorn) || try == tornTries {
			return r, o, err
		}
	}
}

func (s *Store) loadRun(ctx context.Context, runID string, steps int, orderID string) (runstate.State, status.OrderStatus, error) {
	keys := make([]map[string]types.AttributeValue, 0, runstate.Items(steps)+1)
	for k := range runstate.Items(steps) {
		keys = append(keys, runItemKey(runID, k))
	}
	if orderID != "" {
		keys = append(keys, key(orderKey(orderID)))
	}
	items, err := s.batchGet(ctx, keys, true)
	if err != nil {
		return runstate.State{}, "", fmt.Errorf("load run %s: %w", runID, err)
	}
	header, ok := items[itemKey(keys[0])]
	if !ok {
		return runstate.State{}, "", fmt.Errorf("load run %s: %w", runID, ErrNotFound)
	}
	var chunks []map[string]types.AttributeValue
	for _, k := range keys[1:runstate.Items(steps)] {
		if it, ok := items[itemKey(k)]; ok {
			chunks = append(chunks, it)
		}
	}
	r, err := decodeRun(runID, header, chunks)
	if err != nil {
		return r, "", err
	}
	var order status.OrderStatus
	if orderID != "" {
		order = status.OrderStatus(sAttr(items[itemKey(keys[len(keys)-1])], attrStatus))
	}
	return r, order, nil
}

// ReadRun reads a run's header, chunks and failed-attempt records with one
// Query. It returns ErrNotFound if the run does not exist.
func (s *Store) ReadRun(ctx context.Context, runID string, consistent bool) (runstate.State, []runstate.Failure, error) {
	for try := 1; ; try++ {
		r, fs, err := s.readRun(ctx, runID, consistent)
		if !errors.Is(err, errTorn) || try == tornTries {
			return r, fs, err
		}
	}
}

// errTorn: a read saw a run's items in different generations. Reads of
// several items are not isolated from a transaction writing them (DynamoDB
// gives read-committed per item), so a read racing a retry can see the new
// header beside an old chunk; it is read again.
var errTorn = errors.New("run items read in different generations")

// tornTries bounds the reads of a run that keep seeing mixed generations.
const tornTries = 5

func (s *Store) readRun(ctx context.Context, runID string, consistent bool) (runstate.State, []runstate.Failure, error) {
	pk, sk := runKey(runID)
	in := s.prefixQuery(pk, sk, consistent)
	var header map[string]types.AttributeValue
	var chunks []map[string]types.AttributeValue
	var failures []runstate.Failure
	for {
		res, err := s.db.Query(ctx, in)
		if err != nil {
			return runstate.State{}, nil, fmt.Errorf("read run %s: %w", runID, err)
		}
		for _, it := range res.Items {
			switch k := sAttr(it, attrSK); {
			case k == sk:
				header = it
			case strings.HasPrefix(k, "RUN#C"):
				chunks = append(chunks, it)
			case strings.HasPrefix(k, "RUN#A"):
				f, err := decodeFailure(it)
				if err != nil {
					return runstate.State{}, nil, fmt.Errorf("read run %s: %w", runID, err)
				}
				failures = append(failures, f)
			}
		}
		if res.LastEvaluatedKey == nil {
			break
		}
		in.ExclusiveStartKey = res.LastEvaluatedKey
	}
	if header == nil {
		return runstate.State{}, nil, fmt.Errorf("read run %s: %w", runID, ErrNotFound)
	}
	r, err := decodeRun(runID, header, chunks)
	return r, failures, err
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
// conditions, with their values.
type update struct {
	set, remove, cond []string
	values            map[string]types.AttributeValue
}

func newUpdate() *update { return &update{values: map[string]types.AttributeValue{}} }

func (u *update) swap(sw runstate.Swap) {
	slot := runstate.SlotName(sw.Step)
	o, n := fmt.Sprintf(":o%03d", sw.Step), fmt.Sprintf(":n%03d", sw.Step)
	u.set = append(u.set, slot+" = "+n)
	u.cond = append(u.cond, slot+" = "+o)
	u.values[o], u.values[n] = str(sw.Old.Encode()), str(sw.New.Encode())
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

func (s *Store) updateItem(ctx context.Context, k map[string]types.AttributeValue, u *update) error {
	up := u.item(s.table, k)
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: up.TableName, Key: up.Key, UpdateExpression: up.UpdateExpression,
		ConditionExpression: up.ConditionExpression, ExpressionAttributeNames: up.ExpressionAttributeNames,
		ExpressionAttributeValues: up.ExpressionAttributeValues,
	})
	return invalidErr(conditionErr(err))
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

// ClaimSteps writes claim c, on the condition that the run is live in
// c.Gen and every claimed slot is still as read: one UpdateItem when the
// slots share an item, else one transaction, so a claim is all or nothing
// and takes effect at one instant. A failed condition is ErrConflict.
func (s *Store) ClaimSteps(ctx context.Context, c runstate.Claim) error {
	updates := map[int]*update{}
	for k, swaps := range byItem(c.Swaps) {
		u := newUpdate()
		u.cond = append(u.cond, "#gen = :g", "attribute_exists(#live)")
		u.values[":g"] = num(c.Gen)
		for _, sw := range swaps {
			u.swap(sw)
		}
		updates[k] = u
	}
	var err error
	if keys := sortedKeys(updates); len(keys) == 1 {
		err = s.updateItem(ctx, runItemKey(c.RunID, keys[0]), updates[keys[0]])
	} else {
		var items []types.TransactWriteItem
		for _, k := range keys {
			items = append(items, types.TransactWriteItem{Update: updates[k].item(s.table, runItemKey(c.RunID, k))})
		}
		_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		err = txErr(err)
	}
	if err != nil {
		return fmt.Errorf("claim steps of run %s: %w", c.RunID, err)
	}
	return nil
}

// endRun adds to u (the header's update) and to the chunks' updates what
// ending the run as to at writes.
func endRunUpdates(header *update, chunks map[int]*update, items int, to status.RunStatus, at time.Time) {
	header.set = append(header.set, "#st = :end", "#ended = :at")
	header.remove = append(header.remove, "#live", "#act")
	header.values[":end"], header.values[":at"] = str(string(to)), ts(at)
	for k := 1; k < items; k++ {
		if chunks[k] == nil {
			chunks[k] = newUpdate()
		}
		chunks[k].remove = append(chunks[k].remove, "#live")
	}
}

// CommitGroup writes commit c in one transaction: each step's commit
// record, put on the condition that it does not exist (for an order action,
// the order's history entry, an item of its own; for any other step, an
// attribute of the item holding its slot, which the commit writes anyway);
// each failed attempt's record; each slot swapped on the condition that it
// is still the one the runner held; the order's status on the condition that
// it is c.Order.From; if c ends the run, the header's status on the
// condition that the run is still running; and if c.SameGen, the condition
// that the header is still in generation c.Gen. token identifies the commit (in
// its records, and as the idempotency token of the transaction). A failed
// condition is ErrConflict; a commit DynamoDB refuses as invalid is
// ErrInvalid.
func (s *Store) CommitGroup(ctx context.Context, c runstate.Commit, token string) error {
	var items []types.TransactWriteItem
	put := func(it map[string]types.AttributeValue, cond string) {
		p := &types.Put{TableName: aws.String(s.table), Item: it}
		if cond != "" {
			p.ConditionExpression = aws.String(cond)
		}
		items = append(items, types.TransactWriteItem{Put: p})
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
		if d.History == nil {
			u := updateOf(runstate.ItemOf(d.Step))
			name, v := runstate.RecordName(d.Step), fmt.Sprintf(":d%03d", d.Step)
			u.set = append(u.set, name+" = "+v)
			u.cond = append(u.cond, "attribute_not_exists("+name+")")
			u.values[v] = str(record)
			continue
		}
		h := d.History
		it := historyItem(c.OrderID, historySK(c.RunID, d.Step), wire.HistoryEntry{
			At: h.At, Event: h.Event, From: h.From, To: h.To, RunID: h.RunID, StepID: h.StepID,
		})
		it["attempt"], it["token"] = num(d.Attempt), str(token)
		put(it, "attribute_not_exists(pk)")
	}
	for _, f := range c.Failures {
		put(failureItem(c.RunID, f), "")
	}
	if c.End != "" {
		header := updateOf(0)
		header.cond = append(header.cond, "#st = :running")
		header.values[":running"] = str(string(status.RunRunning))
		endRunUpdates(header, updates, c.Items, c.End, c.At)
	}
	if c.SameGen {
		if u := updates[0]; u != nil {
			u.cond = append(u.cond, "#gen = :g")
			u.values[":g"] = num(c.Gen)
		} else {
			items = append(items, types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
				TableName: aws.String(s.table), Key: runItemKey(c.RunID, 0), ConditionExpression: aws.String("#gen = :g"),
				ExpressionAttributeNames:  map[string]string{"#gen": attrGen},
				ExpressionAttributeValues: map[string]types.AttributeValue{":g": num(c.Gen)},
			}})
		}
	}
	for _, k := range sortedKeys(updates) {
		items = append(items, types.TransactWriteItem{Update: updates[k].item(s.table, runItemKey(c.RunID, k))})
	}
	if o := c.Order; o != nil {
		u := newUpdate()
		u.set = append(u.set, "#st = :to", "updated_at = :at")
		u.cond = append(u.cond, "#st = :from")
		u.values[":to"], u.values[":from"], u.values[":at"] = str(string(o.To)), str(string(o.From)), ts(c.At)
		items = append(items, types.TransactWriteItem{Update: u.item(s.table, key(orderKey(o.OrderID)))})
	}
	if len(items) == 0 {
		return nil
	}
	_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
		TransactItems: items, ClientRequestToken: aws.String(token),
	})
	if err != nil {
		return fmt.Errorf("commit steps of run %s: %w", c.RunID, txErr(err))
	}
	return nil
}

// recordValue is a commit record stored as an attribute: the commit's
// token (its last 8 characters, random) and time.
func recordValue(token string, at time.Time) string {
	return token[max(0, len(token)-8):] + ":" + strconv.FormatInt(at.UnixMilli(), 36)
}

// EndRun writes e: the run ends as e.To and stops accepting claims, on the
// condition that it is still running in generation e.Gen. It returns
// ErrConflict if it is not.
func (s *Store) EndRun(ctx context.Context, e runstate.End) error {
	header, chunks := newUpdate(), map[int]*update{}
	header.cond = append(header.cond, "#gen = :g", "#st = :running")
	header.values[":g"], header.values[":running"] = num(e.Gen), str(string(status.RunRunning))
	endRunUpdates(header, chunks, e.Items, e.To, e.At)
	for _, u := range chunks {
		u.cond = append(u.cond, "#gen = :g")
		u.values[":g"] = num(e.Gen)
	}
	if err := s.writeRunItems(ctx, e.RunID, header, chunks); err != nil {
		return fmt.Errorf("end run %s as %s: %w", e.RunID, e.To, err)
	}
	return nil
}

// ResetRun writes retry rs: the run becomes running in the next generation
// with the swapped slots pending, on the condition that it is still in
// status rs.From in generation rs.Gen and each swapped slot is still as
// read. It returns ErrConflict if not.
// The write is one transaction of at most runstate.Items(100) = 7 items.
func (s *Store) ResetRun(ctx context.Context, rs runstate.Reset) error {
	header, chunks := newUpdate(), map[int]*update{}
	for k := 1; k < rs.Items; k++ {
		chunks[k] = newUpdate()
	}
	for k, swaps := range byItem(rs.Swaps) {
		u := header
		if k > 0 {
			u = chunks[k]
		}
		for _, sw := range swaps {
			// Each slot only from what the retry read: a step whose
			// late runner committed meanwhile is not reset.
			u.swap(sw)
		}
	}
	for _, u := range chunks {
		u.set = append(u.set, "#gen = :g1", "#live = :one")
		u.cond = append(u.cond, "#gen = :g")
		u.values[":g"], u.values[":g1"], u.values[":one"] = num(rs.Gen), num(rs.Gen+1), str("1")
	}
	header.set = append(header.set, "#gen = :g1", "#live = :one", "#st = :running", "#act = :active",
		"#rcount = #rcount + :inc", "#rat = :at")
	header.remove = append(header.remove, "#ended")
	header.cond = append(header.cond, "#gen = :g", "#st = :from")
	for k, v := range map[string]types.AttributeValue{
		":g": num(rs.Gen), ":g1": num(rs.Gen + 1), ":one": str("1"), ":running": str(string(status.RunRunning)),
		":active": str(activeValue), ":inc": num(1), ":at": ts(rs.At), ":from": str(string(rs.From)),
	} {
		header.values[k] = v
	}
	if err := s.writeRunItems(ctx, rs.RunID, header, chunks); err != nil {
		return fmt.Errorf("retry run %s: %w", rs.RunID, err)
	}
	return nil
}

// writeRunItems writes a run-level change: one UpdateItem for a run with no
// chunks, else one transaction over the header and its chunks.
func (s *Store) writeRunItems(ctx context.Context, runID string, header *update, chunks map[int]*update) error {
	if len(chunks) == 0 {
		return s.updateItem(ctx, runItemKey(runID, 0), header)
	}
	items := []types.TransactWriteItem{{Update: header.item(s.table, runItemKey(runID, 0))}}
	for _, k := range sortedKeys(chunks) {
		items = append(items, types.TransactWriteItem{Update: chunks[k].item(s.table, runItemKey(runID, k))})
	}
	_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	return txErr(err)
}

// ListActiveRuns returns the IDs of running runs, oldest first, one page at a
// time, from the keys-only by_active index.
func (s *Store) ListActiveRuns(ctx context.Context, p Page) ([]string, string, error) {
	ix := indexNamed(indexActive)
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(ix.Name),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": ix.PK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(activeValue)},
		Limit:                     aws.Int32(int32(p.Limit)),
	}
	if p.Cursor != "" {
		start := key(runKey(p.Cursor))
		start[ix.PK] = str(activeValue)
		start[ix.SK] = str(p.Cursor)
		in.ExclusiveStartKey = start
	}
	out, err := s.db.Query(ctx, in)
	if err != nil {
		return nil, "", fmt.Errorf("list active runs: %w", err)
	}
	ids := make([]string, 0, len(out.Items))
	for _, it := range out.Items {
		if v := sAttr(it, ix.SK); v != "" {
			ids = append(ids, v)
		}
	}
	next := ""
	if out.LastEvaluatedKey != nil && len(ids) > 0 {
		next = ids[len(ids)-1]
	}
	return ids, next, nil
}
