package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"stepflow/internal/runstate"
	"stepflow/internal/status"
)

// The data a run's steps pass along is kept in items of their own, next to
// the run's header, so that the slots stay small:
//
//	RUN#I<gen, 6 digits>  the run's input from that generation on: put when
//	                      the run is created, and by a retry with an input
//	RUN#O<step, 3 digits> a step's output: put by the commit that completes
//	                      the step, on the condition that it does not exist
//	                      (it is then the step's commit record)
//
// and an approval waiting for a decision has an item keyed by the hash of
// its callback token (CB#<hash>), put by the commit that begins the wait
// and deleted by the one that ends it.

func inputSK(gen int) string   { return fmt.Sprintf("RUN#I%06d", gen) }
func outputSK(step int) string { return fmt.Sprintf("RUN#O%03d", step) }

func inputItem(runID string, gen int, input json.RawMessage, at time.Time) map[string]types.AttributeValue {
	pk, _ := runKey(runID)
	it := key(pk, inputSK(gen))
	it[attrGen], it["input"], it["set_at"] = num(gen), str(string(input)), ts(at)
	return it
}

func outputItem(runID string, d runstate.Done, token string) map[string]types.AttributeValue {
	pk, _ := runKey(runID)
	it := key(pk, outputSK(d.Step))
	it["step"], it["attempt"], it["output"], it["token"] = num(d.Step), num(d.Attempt), str(string(d.Output)), str(token)
	if d.ReadsInput {
		it["input_gen"] = num(d.InputGen)
	}
	return it
}

// Input is the input a run's steps see from generation Gen on.
type Input struct {
	Gen   int
	Input json.RawMessage
	SetAt time.Time
}

// RunData is what a run's steps read and made: its inputs, by generation,
// and the outputs of its completed steps, by step index, with the
// generation of the input each read (for those that read it).
type RunData struct {
	// Expires is when the run's header expires (zero while it is live).
	Expires   time.Time
	Inputs    []Input
	Outputs   map[int]json.RawMessage
	InputGens map[int]int
}

// InputAt returns the input of generation gen: the latest set at or before
// it (nil if none).
func (d RunData) InputAt(gen int) json.RawMessage {
	var in json.RawMessage
	for _, i := range d.Inputs {
		if i.Gen <= gen {
			in = i.Input
		}
	}
	return in
}

// InputGenAt returns the generation the input of generation gen was given
// in (0: at creation, or none).
func (d RunData) InputGenAt(gen int) int {
	g := 0
	for _, i := range d.Inputs {
		if i.Gen <= gen {
			g = i.Gen
		}
	}
	return g
}

// collect adds a run item read whole (see readRun) to d if it is an input
// or an output, and reports whether it was.
func (d *RunData) collect(sk string, it map[string]types.AttributeValue) (bool, error) {
	switch {
	case strings.HasPrefix(sk, "RUN#I"):
		g, err := nAttr(it, attrGen)
		if err != nil {
			return true, err
		}
		at, err := tAttr(it, "set_at")
		if err != nil {
			return true, err
		}
		d.Inputs = append(d.Inputs, Input{Gen: g, Input: json.RawMessage(sAttr(it, "input")), SetAt: at})
		return true, nil
	case strings.HasPrefix(sk, "RUN#O"):
		n, err := nAttr(it, "step")
		if err != nil {
			return true, err
		}
		if d.Outputs == nil {
			d.Outputs, d.InputGens = map[int]json.RawMessage{}, map[int]int{}
		}
		d.Outputs[n] = json.RawMessage(sAttr(it, "output"))
		if g, err := nAttr(it, "input_gen"); err == nil {
			d.InputGens[n] = g
		}
		return true, nil
	}
	return false, nil
}

// LoadData reads what a step's templates need of run runID in generation
// gen: the run's input if input is set, and the outputs of steps, with
// consistent reads (one Query and one BatchGetItem at most). A step whose
// output is missing has none in the result.
func (s *Store) LoadData(ctx context.Context, runID string, gen int, input bool, steps []int) (RunData, error) {
	var d RunData
	pk, _ := runKey(runID)
	if input {
		out, err := s.db.Query(ctx, &dynamodb.QueryInput{
			TableName:              aws.String(s.table),
			KeyConditionExpression: aws.String("pk = :pk AND sk BETWEEN :lo AND :hi"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":pk": str(pk), ":lo": str(inputSK(0)), ":hi": str(inputSK(gen)),
			},
			ScanIndexForward: aws.Bool(false),
			Limit:            aws.Int32(1),
			ConsistentRead:   aws.Bool(true),
		})
		if err != nil {
			return d, fmt.Errorf("read input of run %s: %w", runID, err)
		}
		for _, it := range out.Items {
			if expired(it, s.now()) {
				continue
			}
			if _, err := d.collect(sAttr(it, attrSK), it); err != nil {
				return d, fmt.Errorf("read input of run %s: %w", runID, err)
			}
		}
	}
	if len(steps) == 0 {
		return d, nil
	}
	keys := make([]map[string]types.AttributeValue, len(steps))
	for n, i := range steps {
		keys[n] = key(pk, outputSK(i))
	}
	got, err := s.batchGet(ctx, keys, true)
	if err != nil {
		return d, fmt.Errorf("read outputs of run %s: %w", runID, err)
	}
	for _, it := range got {
		if expired(it, s.now()) {
			continue
		}
		if _, err := d.collect(sAttr(it, attrSK), it); err != nil {
			return d, fmt.Errorf("read outputs of run %s: %w", runID, err)
		}
	}
	return d, nil
}

// Callbacks.

func callbackKey(hash string) map[string]types.AttributeValue { return key("CB#"+hash, "CB") }

// callbackLife is how long a callback item outlives its deadline before
// DynamoDB's TTL may delete it (it is deleted when the wait ends; this
// only cleans up after a run that never ends its wait).
const callbackLife = 7 * 24 * time.Hour

func callbackItem(runID string, w runstate.Waiting) map[string]types.AttributeValue {
	it := callbackKey(w.Callback)
	it["run_id"], it["step"], it["attempt"] = str(runID), num(w.Step), num(w.Attempt)
	it["start"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(w.Start.UnixMilli(), 10)}
	if !w.Until.IsZero() {
		it["ttl"] = num(int(w.Until.Add(callbackLife).Unix()))
	}
	return it
}

// Callback is the waiting approval a callback token's hash names: the
// wait attempt Attempt of step Step began at Start.
type Callback struct {
	RunID         string
	Step, Attempt int
	Start         time.Time
}

// CallbackFor returns the approval whose callback token hashes to hash, or
// ErrNotFound (unknown, or its wait has ended).
func (s *Store) CallbackFor(ctx context.Context, hash string) (Callback, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: callbackKey(hash), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return Callback{}, fmt.Errorf("read callback: %w", err)
	}
	if out.Item == nil || expired(out.Item, s.now()) {
		return Callback{}, fmt.Errorf("callback: %w", ErrNotFound)
	}
	var c Callback
	c.RunID = sAttr(out.Item, "run_id")
	for name, dst := range map[string]*int{"step": &c.Step, "attempt": &c.Attempt} {
		if *dst, err = nAttr(out.Item, name); err != nil {
			return Callback{}, fmt.Errorf("callback: %w", err)
		}
	}
	ms, err := strconv.ParseInt(numAttr(out.Item, "start"), 10, 64)
	if err != nil {
		return Callback{}, fmt.Errorf("callback: start: %w", err)
	}
	c.Start = time.UnixMilli(ms).UTC()
	return c, nil
}

// The callback key: the secret callback tokens are derived from, made at
// random the first time it is needed and kept in the table.

// CallbackKey returns the key callback tokens are derived from, creating
// it (32 random bytes, put on the condition that there is none) the first
// time. It is cached once read.
func (s *Store) CallbackKey(ctx context.Context) ([]byte, error) {
	s.keyMu.Lock()
	cached := s.key
	s.keyMu.Unlock()
	if cached != nil {
		return cached, nil
	}
	// No lock across the requests: concurrent first calls read the same
	// item (the put is conditional), so they agree.
	b, err := s.readCallbackKey(ctx)
	if err != nil {
		return nil, err
	}
	s.keyMu.Lock()
	s.key = b
	s.keyMu.Unlock()
	return b, nil
}

func (s *Store) readCallbackKey(ctx context.Context) ([]byte, error) {
	k := key("KEY#callback", "KEY")
	for try := 0; try < 3; try++ {
		out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: k, ConsistentRead: aws.Bool(true)})
		if err != nil {
			return nil, fmt.Errorf("read callback key: %w", err)
		}
		if out.Item != nil {
			b, err := base64.StdEncoding.DecodeString(sAttr(out.Item, "key"))
			if err != nil || len(b) < 32 {
				return nil, errors.New("callback key: malformed")
			}
			return b, nil
		}
		fresh := make([]byte, 32)
		_, _ = rand.Read(fresh) // never fails
		it := key("KEY#callback", "KEY")
		it["key"] = str(base64.StdEncoding.EncodeToString(fresh))
		_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: it, ConditionExpression: aws.String("attribute_not_exists(pk)")})
		if err != nil && !errors.Is(conditionErr(err), ErrConflict) {
			return nil, fmt.Errorf("create callback key: %w", err)
		}
		// Created, by this call or another: read it back (a put whose
		// answer was lost may have landed).
	}
	return nil, errors.New("callback key: could not be read after it was created")
}

// keyCache holds the callback key once read.
type keyCache struct {
	keyMu sync.Mutex
	key   []byte
}

// Order reservations: an http step that moves an order reserves the order
// before it calls out, so that a second run does not call the same service
// for the same move while the first one does.

// Reservation is an order action's claim on its order: run RunID's step
// StepID is about to move the order from From, until Until, while the run
// is live in generation Gen.
type Reservation struct {
	OrderID, RunID, StepID string
	Gen                    int
	From                   status.OrderStatus
	// At is now; Until is when the reservation lapses.
	At, Until time.Time
}

// ErrNotLive: a write that must find the run live in its generation found
// it ended or retried.
var ErrNotLive = errors.New("the run is no longer live in its generation")

// OrderRefusedError says why an order refused a reservation: it is no
// longer in the status the action needs (Status, last moved by run ByRun),
// or another run holds it (HeldBy, until HeldUntil).
type OrderRefusedError struct {
	Status    status.OrderStatus
	ByRun     string
	HeldBy    string
	HeldStep  string
	HeldUntil time.Time
}

func (e *OrderRefusedError) Error() string {
	if e.HeldBy != "" {
		return fmt.Sprintf("order is held by run %s (step %s) until %s", e.HeldBy, e.HeldStep, e.HeldUntil.Format(time.RFC3339))
	}
	return fmt.Sprintf("order is %s (moved by run %s)", e.Status, e.ByRun)
}

func (e *OrderRefusedError) Unwrap() error { return ErrConflict }

// Attributes of an order's reservation and of who last moved it.
const (
	attrResRun   = "res_run"
	attrResStep  = "res_step"
	attrResUntil = "res_until"
	attrByRun    = "by_run"
)

// ReserveOrderIfFree reserves an order for r, on the condition that the
// order is in status r.From and no other run holds it (a reservation of
// r's own run, or one that expired, is replaced), and that the run is
// still live in generation r.Gen: one transaction, so that the effect that
// follows it never comes after a cancel or a retry was acknowledged. A
// refusal by the order is an *OrderRefusedError (wrapping ErrConflict), by
// the run ErrNotLive; an order that does not exist is ErrNotFound. A
// reservation whose answer was lost is read back.
func (s *Store) ReserveOrderIfFree(ctx context.Context, r Reservation) error {
	until := strconv.FormatInt(r.Until.UnixMilli(), 10)
	now := strconv.FormatInt(r.At.UnixMilli(), 10)
	t := &txn{}
	t.add(types.TransactWriteItem{Update: &types.Update{
		TableName: aws.String(s.table), Key: key(orderKey(r.OrderID)),
		UpdateExpression:         aws.String("SET res_run = :run, res_step = :step, res_until = :until"),
		ConditionExpression:      aws.String("attribute_exists(pk) AND #st = :from AND (attribute_not_exists(res_run) OR res_run = :run OR res_until < :now)"),
		ExpressionAttributeNames: map[string]string{"#st": attrStatus},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":run": str(r.RunID), ":step": str(r.StepID), ":until": &types.AttributeValueMemberN{Value: until},
			":from": str(string(r.From)), ":now": &types.AttributeValueMemberN{Value: now},
		},
	}}, fmt.Sprintf("order %s (requires status %s and no other run's reservation)", r.OrderID, r.From))
	live := newUpdate()
	live.liveIn(r.Gen)
	runItem := itemName(r.RunID, 0)
	t.add(types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
		TableName: aws.String(s.table), Key: runItemKey(r.RunID, 0), ConditionExpression: aws.String(strings.Join(live.cond, " AND ")),
		ExpressionAttributeNames: live.names(), ExpressionAttributeValues: live.values,
	}}, live.describe(runItem))
	err := s.writeTxn(ctx, t, "")
	if err == nil {
		return nil
	}
	if !errors.Is(err, ErrConflict) && !landedOrNot(err) {
		return fmt.Errorf("reserve order %s: %w", r.OrderID, err)
	}
	if errors.Is(err, ErrConflict) && strings.Contains(err.Error(), runItem) && strings.Contains(err.Error(), "ConditionalCheckFailed") {
		return fmt.Errorf("reserve order %s: %w: %w", r.OrderID, ErrNotLive, err)
	}
	// Refused, or the answer was lost: read the order to tell.
	item, gerr := s.get(ctx, orderKey, r.OrderID, true)
	if gerr != nil {
		return fmt.Errorf("reserve order %s: %w (reading it: %w)", r.OrderID, err, gerr)
	}
	st := status.OrderStatus(sAttr(item, attrStatus))
	holder := sAttr(item, attrResRun)
	if st == r.From && holder == r.RunID && sAttr(item, attrResStep) == r.StepID {
		if v, ok := item[attrResUntil].(*types.AttributeValueMemberN); ok && v.Value == until {
			return nil // ours landed
		}
	}
	refusal := &OrderRefusedError{Status: st, ByRun: sAttr(item, attrByRun)}
	if st == r.From && holder != "" && holder != r.RunID {
		ms, _ := strconv.ParseInt(numAttr(item, attrResUntil), 10, 64)
		refusal.HeldBy, refusal.HeldStep, refusal.HeldUntil = holder, sAttr(item, attrResStep), time.UnixMilli(ms).UTC()
	}
	if st == r.From && refusal.HeldBy == "" {
		// Free again since the write was refused (or the answer was
		// lost before it landed): the caller may try again.
		return fmt.Errorf("reserve order %s: %w", r.OrderID, ErrConflict)
	}
	return fmt.Errorf("reserve order %s: %w", r.OrderID, refusal)
}

// holdOf reads an order item's reservation.
func holdOf(item map[string]types.AttributeValue) runstate.Hold {
	h := runstate.Hold{RunID: sAttr(item, attrResRun), StepID: sAttr(item, attrResStep)}
	if ms, err := strconv.ParseInt(numAttr(item, attrResUntil), 10, 64); err == nil {
		h.Until = time.UnixMilli(ms).UTC()
	}
	return h
}

// ReleaseOrderIfHeld ends run runID's reservation of an order, if it still
// holds it (a step that reserved the order and failed for good: others
// need not wait for its lease). A release refused because the run holds
// no reservation is not an error.
func (s *Store) ReleaseOrderIfHeld(ctx context.Context, orderID, runID string) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(s.table), Key: key(orderKey(orderID)),
		UpdateExpression:          aws.String("REMOVE res_run, res_step, res_until"),
		ConditionExpression:       aws.String("res_run = :run"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":run": str(runID)},
	})
	if err == nil || errors.Is(conditionErr(err), ErrConflict) {
		return nil
	}
	return fmt.Errorf("release order %s: %w", orderID, err)
}

func numAttr(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberN); ok {
		return v.Value
	}
	return ""
}

// sortedInputs orders inputs by generation.
func sortedInputs(in []Input) []Input {
	slices.SortFunc(in, func(a, b Input) int { return a.Gen - b.Gen })
	return in
}
