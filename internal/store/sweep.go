package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"stepflow/internal/runstate"
)

// The sweeper's storage: its cursor, one item (pk "SWEEP", sk "CURSOR"),
// and a mark per run it re-sent messages for (pk "RUN#<id>", sk
// "SWEEP#MARK"), which the table's TTL deletes. A run's reads (sort keys
// from "RUN") never see its mark. Every write here is conditional, and
// every one recognises its own landed write after a lost answer.

func sweepCursorKey() map[string]types.AttributeValue { return key("SWEEP", "CURSOR") }

func resendMarkKey(runID string) map[string]types.AttributeValue {
	pk, _ := runKey(runID)
	return key(pk, "SWEEP#MARK")
}

// Attributes of the cursor item.
const (
	attrLease      = "lease"       // the holder's token, while held
	attrLeaseUntil = "lease_until" // when the lease ends (ts)
	attrSaved      = "saved"       // the token of the holder that last released it
)

// SweepCursor is where the sweeper's current cycle over the by_active
// shards stands. A cycle visits every shard from its oldest run to its
// newest, across as many passes as it takes.
type SweepCursor struct {
	// After holds, per shard, the ID of the last run the cycle swept
	// there ("": none yet). Its length is the shard count the cursor was
	// saved with (0: never saved).
	After []string
	// Done says, per shard, that the cycle swept it to its end.
	Done []bool
	// Cycles counts the cycles completed.
	Cycles int
	// Began is when the current cycle began (zero before the first).
	Began time.Time
	// Runs and Passes are what the current cycle swept so far, and in how
	// many passes.
	Runs, Passes int
}

// SweepLease proves that its holder took the sweep cursor:
// SaveSweepIfHeld and ReleaseSweepIfHeld take it back.
type SweepLease struct {
	token string
	// Until is when the lease ends: another sweeper may take the cursor
	// from then on.
	Until time.Time
}

type sweepCursorRecord struct {
	After  map[string]string `dynamodbav:"after,omitempty"`
	Done   []int             `dynamodbav:"done,omitempty,numberset"`
	Shards int               `dynamodbav:"shards"`
	Cycles int               `dynamodbav:"cycles"`
	Began  string            `dynamodbav:"began,omitempty"`
	Runs   int               `dynamodbav:"cycle_runs"`
	Passes int               `dynamodbav:"cycle_passes"`
}

func (c SweepCursor) record() sweepCursorRecord {
	rec := sweepCursorRecord{Shards: len(c.After), Cycles: c.Cycles, Runs: c.Runs, Passes: c.Passes}
	for i, a := range c.After {
		if a != "" {
			if rec.After == nil {
				rec.After = map[string]string{}
			}
			rec.After[strconv.Itoa(i)] = a
		}
	}
	for i, d := range c.Done {
		if d {
			rec.Done = append(rec.Done, i)
		}
	}
	if !c.Began.IsZero() {
		rec.Began = c.Began.UTC().Format(tsLayout)
	}
	return rec
}

func decodeSweepCursor(item map[string]types.AttributeValue) (SweepCursor, error) {
	var rec sweepCursorRecord
	if err := attributevalue.UnmarshalMap(item, &rec); err != nil {
		return SweepCursor{}, fmt.Errorf("decode sweep cursor: %w", err)
	}
	c := SweepCursor{After: make([]string, rec.Shards), Done: make([]bool, rec.Shards), Cycles: rec.Cycles, Runs: rec.Runs, Passes: rec.Passes}
	for k, v := range rec.After {
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i >= rec.Shards {
			return SweepCursor{}, fmt.Errorf("decode sweep cursor: shard %q of %d", k, rec.Shards)
		}
		c.After[i] = v
	}
	for _, i := range rec.Done {
		if i < 0 || i >= rec.Shards {
			return SweepCursor{}, fmt.Errorf("decode sweep cursor: done shard %d of %d", i, rec.Shards)
		}
		c.Done[i] = true
	}
	if rec.Began != "" {
		t, err := time.Parse(time.RFC3339Nano, rec.Began)
		if err != nil {
			return SweepCursor{}, fmt.Errorf("decode sweep cursor: %w", err)
		}
		c.Began = t
	}
	return c, nil
}

// TakeSweepIfFree takes the sweep cursor until until, on the condition
// that no other sweeper holds it at now (it was never taken, was released,
// or its lease ended), and returns it. It returns ErrConflict if another
// sweeper holds it. A take whose answer was lost is recognised by its
// token.
func (s *Store) TakeSweepIfFree(ctx context.Context, now, until time.Time) (SweepCursor, SweepLease, error) {
	l := SweepLease{token: newToken(), Until: until}
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      sweepCursorKey(),
		UpdateExpression:         aws.String("SET #lease = :tok, #until = :until"),
		ConditionExpression:      aws.String("attribute_not_exists(#until) OR #until <= :now"),
		ExpressionAttributeNames: map[string]string{"#lease": attrLease, "#until": attrLeaseUntil},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":tok": str(l.token), ":until": ts(until), ":now": ts(now),
		},
		ReturnValues: types.ReturnValueAllNew,
	})
	item := map[string]types.AttributeValue(nil)
	if out != nil {
		item = out.Attributes
	}
	if err != nil {
		err = conditionErr(err)
		if !landedOrNot(err) {
			return SweepCursor{}, SweepLease{}, fmt.Errorf("take sweep cursor: %w", err)
		}
		got, rerr := s.readBackItem(ctx, sweepCursorKey())
		switch {
		case rerr != nil:
			return SweepCursor{}, SweepLease{}, fmt.Errorf("take sweep cursor: %w: %v; reading it back: %v", ErrUnknown, err, rerr)
		case got == nil || sAttr(got, attrLease) != l.token:
			return SweepCursor{}, SweepLease{}, fmt.Errorf("take sweep cursor: %w", err)
		}
		item = got // ours: the take landed and its answer was lost
	}
	c, err := decodeSweepCursor(item)
	if err != nil {
		return SweepCursor{}, SweepLease{}, err
	}
	return c, l, nil
}

// SaveSweepIfHeld stores c as the sweep cursor, on the condition that l
// still holds it. It returns ErrConflict if not (l's lease ended and
// another sweeper took the cursor). A save is idempotent, so one whose
// answer was lost is simply sent again by the SDK.
func (s *Store) SaveSweepIfHeld(ctx context.Context, l SweepLease, c SweepCursor) error {
	if err := s.writeSweepCursor(ctx, l, c, false); err != nil {
		return fmt.Errorf("save sweep cursor: %w", err)
	}
	return nil
}

// ReleaseSweepIfHeld stores c as the sweep cursor and gives the cursor up,
// on the condition that l still holds it: the next sweeper may take it at
// once. It returns ErrConflict if l no longer holds it; a release whose
// answer was lost is recognised by its token.
func (s *Store) ReleaseSweepIfHeld(ctx context.Context, l SweepLease, c SweepCursor) error {
	err := s.writeSweepCursor(ctx, l, c, true)
	if landedOrNot(err) {
		got, rerr := s.readBackItem(ctx, sweepCursorKey())
		switch {
		case rerr != nil:
			return fmt.Errorf("release sweep cursor: %w: %v; reading it back: %v", ErrUnknown, err, rerr)
		case got != nil && sAttr(got, attrSaved) == l.token:
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("release sweep cursor: %w", err)
	}
	return nil
}

func (s *Store) writeSweepCursor(ctx context.Context, l SweepLease, c SweepCursor, release bool) error {
	if len(c.Done) != len(c.After) {
		return errors.New("sweep cursor: After and Done differ in length")
	}
	vals, err := attributevalue.MarshalMap(c.record())
	if err != nil {
		return fmt.Errorf("encode sweep cursor: %w", err)
	}
	names := map[string]string{"#lease": attrLease}
	values := map[string]types.AttributeValue{":tok": str(l.token)}
	var set, remove []string
	// Every attribute of the record is set, or removed when empty. No
	// placeholder is a prefix of another (see runNames).
	for _, name := range []string{"after", "done", "shards", "cycles", "began", "cycle_runs", "cycle_passes"} {
		names["#"+name] = name
		if v, ok := vals[name]; ok {
			values[":"+name] = v
			set = append(set, "#"+name+" = :"+name)
		} else {
			remove = append(remove, "#"+name)
		}
	}
	if release {
		names["#until"], names["#saved"] = attrLeaseUntil, attrSaved
		remove = append(remove, "#lease", "#until")
		set = append(set, "#saved = :tok")
	}
	expr := "SET " + strings.Join(set, ", ")
	if len(remove) > 0 {
		expr += " REMOVE " + strings.Join(remove, ", ")
	}
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       sweepCursorKey(),
		UpdateExpression:          aws.String(expr),
		ConditionExpression:       aws.String("#lease = :tok"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	return invalidErr(conditionErr(err))
}

// readBackItem reads an item strongly consistently, trying as readBack
// does; a missing item is nil.
func (s *Store) readBackItem(ctx context.Context, k map[string]types.AttributeValue) (map[string]types.AttributeValue, error) {
	var item map[string]types.AttributeValue
	_, err := readBack(ctx, func() (bool, error) {
		out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: k, ConsistentRead: aws.Bool(true)})
		if err != nil {
			return false, err
		}
		item = out.Item
		return true, nil
	})
	return item, err
}

// ResendMark records the sweeper's re-sends of one step's message while
// the step stays in one state.
type ResendMark struct {
	// State names the step's state the re-sends were for (see
	// StepState); a step that has moved since has a new one.
	State string
	// Sends counts the re-sends in that state; Last is when the last was
	// sent.
	Sends int
	Last  time.Time
}

// StepState names step i's state in r: the run's generation and the
// step's slot, which changes whenever anything happens to the step (a
// claim, a takeover, a failed attempt, a retry).
func StepState(r runstate.State, i int) string {
	return strconv.Itoa(r.Gen) + "/" + r.Steps[i].Encode()
}

// ResendMarks are one run's marks as read. Pass them back to
// ReplaceResendMarksIfUnchanged, which writes only if nobody wrote them
// since.
type ResendMarks struct {
	// Steps holds the marks by step index (empty when the run has none).
	Steps map[int]ResendMark
	tok   string
}

type resendMarkRecord struct {
	State string `dynamodbav:"state"`
	Sends int    `dynamodbav:"n"`
	Last  string `dynamodbav:"at"`
}

// ReadResendMarks reads the marks of the runs named, eventually
// consistently (a stale read makes the replace that follows fail its
// condition, never act on it), with BatchGetItem. Every run named is in
// the result; one with no marks, or marks past their TTL, has an empty
// Steps.
func (s *Store) ReadResendMarks(ctx context.Context, runIDs []string) (map[string]ResendMarks, error) {
	keys := make([]map[string]types.AttributeValue, len(runIDs))
	for i, id := range runIDs {
		keys[i] = resendMarkKey(id)
	}
	items, err := s.batchGet(ctx, keys, false)
	if err != nil {
		return nil, fmt.Errorf("read resend marks: %w", err)
	}
	out := make(map[string]ResendMarks, len(runIDs))
	for i, id := range runIDs {
		m := ResendMarks{Steps: map[int]ResendMark{}}
		if it, ok := items[itemKey(keys[i])]; ok {
			if m, err = decodeResendMarks(it); err != nil {
				return nil, fmt.Errorf("read resend marks of run %s: %w", id, err)
			}
			if expired(it, s.now()) {
				// As good as gone; the replace still compares its token.
				m.Steps = map[int]ResendMark{}
			}
		}
		out[id] = m
	}
	return out, nil
}

func decodeResendMarks(it map[string]types.AttributeValue) (ResendMarks, error) {
	var recs map[string]resendMarkRecord
	if v, ok := it["m"]; ok {
		if err := attributevalue.Unmarshal(v, &recs); err != nil {
			return ResendMarks{}, fmt.Errorf("decode resend marks: %w", err)
		}
	}
	m := ResendMarks{Steps: make(map[int]ResendMark, len(recs)), tok: sAttr(it, attrTok)}
	for k, r := range recs {
		i, err := strconv.Atoi(k)
		if err != nil {
			return ResendMarks{}, fmt.Errorf("decode resend marks: step %q", k)
		}
		last, err := time.Parse(time.RFC3339Nano, r.Last)
		if err != nil {
			return ResendMarks{}, fmt.Errorf("decode resend marks: %w", err)
		}
		m.Steps[i] = ResendMark{State: r.State, Sends: r.Sends, Last: last}
	}
	return m, nil
}

// ReplaceResendMarksIfUnchanged replaces run runID's marks by steps, on the
// condition that they are still as read (nobody wrote them since), and lets
// DynamoDB's TTL delete them after expires. It returns the marks as written
// (so that a sweeper whose send failed can put back what it read, on the
// condition that they are still its own), or ErrConflict if another
// sweeper wrote them since; a replace whose answer was lost is recognised
// by its token.
func (s *Store) ReplaceResendMarksIfUnchanged(ctx context.Context, runID string, read ResendMarks, steps map[int]ResendMark, expires time.Time) (ResendMarks, error) {
	wrote := ResendMarks{Steps: steps}
	recs := make(map[string]resendMarkRecord, len(steps))
	for _, i := range slices.Sorted(maps.Keys(steps)) {
		m := steps[i]
		recs[strconv.Itoa(i)] = resendMarkRecord{State: m.State, Sends: m.Sends, Last: m.Last.UTC().Format(tsLayout)}
	}
	mv, err := attributevalue.Marshal(recs)
	if err != nil {
		return ResendMarks{}, fmt.Errorf("encode resend marks of run %s: %w", runID, err)
	}
	tok := newToken()
	wrote.tok = tok
	in := &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      resendMarkKey(runID),
		UpdateExpression:         aws.String("SET #m = :m, #tok = :tok, #ttl = :ttl"),
		ExpressionAttributeNames: map[string]string{"#m": "m", "#tok": attrTok, "#ttl": attrTTL},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":m": mv, ":tok": str(tok), ":ttl": epoch(expires),
		},
	}
	if read.tok == "" {
		in.ConditionExpression = aws.String("attribute_not_exists(#tok)")
	} else {
		in.ConditionExpression = aws.String("#tok = :read")
		in.ExpressionAttributeValues[":read"] = str(read.tok)
	}
	_, err = s.db.UpdateItem(ctx, in)
	err = invalidErr(conditionErr(err))
	if landedOrNot(err) {
		got, rerr := s.readBackItem(ctx, resendMarkKey(runID))
		switch {
		case rerr != nil:
			return ResendMarks{}, fmt.Errorf("replace resend marks of run %s: %w: %v; reading it back: %v", runID, ErrUnknown, err, rerr)
		case got != nil && sAttr(got, attrTok) == tok:
			return wrote, nil
		}
	}
	if err != nil {
		return ResendMarks{}, fmt.Errorf("replace resend marks of run %s: %w", runID, err)
	}
	return wrote, nil
}

// RunRead is one run as ReadRuns found it: the run, or why not.
type RunRead struct {
	ID  string
	Run runstate.State
	// Err is ErrNotFound when the run has no header (the index ran ahead
	// of the table, or the run is gone), an error IsUnreadable accepts
	// when its items cannot be decoded, or the error of the read that
	// retried a torn read.
	Err error
}

// ReadRuns reads the runs named whole (header and chunks; not their
// failed-attempt records, inputs or outputs), eventually consistently,
// with BatchGetItem: one request for up to 100 runs of at most
// runstate.HeaderSlots steps, one more for their chunks if any has some. A
// header past its TTL is a run gone, as for ReadRun. A run read while
// a transaction was landing on it (items in different generations) is
// read again by ReadRun. The result is in the order of ids. The error is
// that of a request that failed, and then nothing is returned.
func (s *Store) ReadRuns(ctx context.Context, ids []string) ([]RunRead, error) {
	keys := make([]map[string]types.AttributeValue, len(ids))
	for i, id := range ids {
		keys[i] = runItemKey(id, 0)
	}
	headers, err := s.batchGet(ctx, keys, false)
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	var chunkKeys []map[string]types.AttributeValue
	for i := range ids {
		h, ok := headers[itemKey(keys[i])]
		if !ok {
			continue
		}
		n, err := nAttr(h, "step_count")
		if err != nil {
			continue // decodeWhole says why
		}
		for k := 1; k < runstate.Items(n); k++ {
			chunkKeys = append(chunkKeys, runItemKey(ids[i], k))
		}
	}
	chunks := map[string]map[string]types.AttributeValue{}
	if len(chunkKeys) > 0 {
		if chunks, err = s.batchGet(ctx, chunkKeys, false); err != nil {
			return nil, fmt.Errorf("read runs: %w", err)
		}
	}
	out := make([]RunRead, len(ids))
	for i, id := range ids {
		out[i].ID = id
		h, ok := headers[itemKey(keys[i])]
		if !ok || expired(h, s.now()) {
			out[i].Err = fmt.Errorf("read run %s: %w", id, ErrNotFound)
			continue
		}
		items := map[int]map[string]types.AttributeValue{0: h}
		if n, err := nAttr(h, "step_count"); err == nil {
			for k := 1; k < runstate.Items(n); k++ {
				if c, ok := chunks[itemKey(runItemKey(id, k))]; ok {
					items[k] = c
				}
			}
		}
		r, err := decodeWhole(id, items)
		if errors.Is(err, errTorn) {
			r, _, err = s.ReadRun(ctx, id, false)
		}
		out[i].Run, out[i].Err = r, err
	}
	return out, nil
}
