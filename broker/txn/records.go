package txn

// The state log holds one record per change of a transactional id: the
// key is the id (UTF-8), the value the JSON of txnState with a version, or
// null when the id expired. The log is compacted, so the latest record
// per id is the state (docs/format.md).

import (
	"encoding/json"
	"fmt"

	"github.com/gregor-log/gregor/broker/record"
)

// stateVersion is the version of the JSON value.
const stateVersion = 1

type stateValue struct {
	Version int `json:"v"`
	txnState
}

func encodeState(id string, st *txnState, nowMs int64) ([]byte, error) {
	v, err := json.Marshal(stateValue{Version: stateVersion, txnState: *st})
	if err != nil {
		return nil, fmt.Errorf("encode transaction state of %q: %w", id, err)
	}
	b := record.NewBuilder()
	b.Add([]byte(id), v, nil, nowMs)
	return b.Build(), nil
}

func encodeTombstone(id string, nowMs int64) []byte {
	b := record.NewBuilder()
	b.Add([]byte(id), nil, nil, nowMs)
	return b.Build()
}

// load replays the state log.
func (c *Coordinator) load() error {
	states := map[string]txnState{}
	err := c.opts.Log.Replay(func(batch []byte) error {
		h, err := record.ParseHeader(batch)
		if err != nil {
			return err
		}
		if h.Control() {
			return nil
		}
		return record.Records(h, batch, func(r *record.Record) error {
			id := string(r.Key)
			if r.Value == nil {
				delete(states, id)
				return nil
			}
			var v stateValue
			if err := json.Unmarshal(r.Value, &v); err != nil {
				return fmt.Errorf("transaction state of %q at offset %d: %w", id, h.BaseOffset+int64(r.OffsetDelta), err)
			}
			if v.Version != stateVersion {
				return fmt.Errorf("transaction state of %q at offset %d: version %d, this broker reads %d", id, h.BaseOffset+int64(r.OffsetDelta), v.Version, stateVersion)
			}
			states[id] = v.txnState
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("load transaction state: %w", err)
	}
	for id, st := range states {
		c.install(&entry{id: id}, st)
	}
	return nil
}
