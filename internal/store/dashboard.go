package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"stepflow/internal/wire"
)

// Workflows shared by identical definitions, for the dashboard's new-run
// page (POST /workflows answers with the existing workflow).

func defKey(hash string) (pk, sk string) { return "WFDEF#" + hash, "WFDEF" }

// defWorkflow is the hash item's attribute naming its workflow. It is not
// workflow_id, the by_workflow index's key: an item with an index's
// partition key and no sort key shows up in that index on some emulators.
const defWorkflow = "wf"

// FindOrCreateWorkflow stores w unless a workflow with an identical
// definition (after normalization, name included) exists; then it returns
// that one and true. Identical definitions are found by a hash item
// (WFDEF#<sha256 of the definition's JSON>) written with a conditional put
// before the workflow itself, so two concurrent calls agree on one
// workflow. A hash item whose workflow is missing (its writer crashed
// between the two puts, or is between them now) is completed with this
// definition under the hash item's workflow ID.
func (s *Store) FindOrCreateWorkflow(ctx context.Context, w wire.Workflow) (wire.Workflow, bool, error) {
	def, err := json.Marshal(w.Definition)
	if err != nil {
		return w, false, fmt.Errorf("encode definition: %w", err)
	}
	sum := sha256.Sum256(def)
	hash := hex.EncodeToString(sum[:])
	pk, sk := defKey(hash)
	err = s.putIfAbsent(ctx, map[string]types.AttributeValue{
		attrPK: str(pk), attrSK: str(sk), defWorkflow: str(w.ID),
	}, defWorkflow, w.ID, "definition hash "+hash)
	if err == nil {
		err := s.CreateWorkflowIfAbsent(ctx, w)
		if errors.Is(err, ErrConflict) {
			// A concurrent creator of the same definition found the
			// hash and wrote the workflow under this ID first.
			found, gerr := s.GetWorkflow(ctx, w.ID)
			return found, false, gerr
		}
		return w, false, err
	}
	if !errors.Is(err, ErrConflict) {
		return w, false, err
	}
	item, err := s.get(ctx, defKey, hash, true)
	if err != nil {
		return w, false, fmt.Errorf("get definition hash %s: %w", hash, err)
	}
	idAttr, _ := item[defWorkflow].(*types.AttributeValueMemberS)
	if idAttr == nil {
		return w, false, fmt.Errorf("definition hash %s names no workflow", hash)
	}
	found, err := s.GetWorkflow(ctx, idAttr.Value)
	if err == nil {
		return found, true, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return w, false, err
	}
	w.ID = idAttr.Value
	if err := s.CreateWorkflowIfAbsent(ctx, w); errors.Is(err, ErrConflict) {
		// Its first writer finished in the meantime.
		found, err := s.GetWorkflow(ctx, w.ID)
		return found, err == nil, err
	} else if err != nil {
		return w, false, err
	}
	// Written here under the first writer's ID: that writer created it.
	return w, true, nil
}
