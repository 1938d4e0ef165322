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

// load replays the state log. A transactional id's later records
// supersede its earlier ones, so only the last value of each is decoded
// (the log of a busy producer holds several records per transaction until
// the cleaner compacts it: decoding every one made starts slow).
func (c *Coordinator) load() error {
	type last struct {
		value  []byte
		offset int64
	}
	latest := map[string]*last{}
	err := c.opts.Log.Replay(func(batch []byte) error {
		h, err := record.ParseHeader(batch)
		if err != nil {
			return err
		}
		if h.Control() {
			return nil
		}
		return record.Records(h, batch, func(r *record.Record) error {
			if r.Value == nil {
				delete(latest, string(r.Key))
				return nil
			}
			l := latest[string(r.Key)]
			if l == nil {
				l = &last{}
				latest[string(r.Key)] = l
			}
			l.value = append(l.value[:0], r.Value...) // the batch's bytes are not ours to keep
			l.offset = h.BaseOffset + int64(r.OffsetDelta)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("load transaction state: %w", err)
	}
	states := make(map[string]txnState, len(latest))
	for id, l := range latest {
		var v stateValue
		if err := json.Unmarshal(l.value, &v); err != nil {
			return fmt.Errorf("load transaction state: transaction state of %q at offset %d: %w", id, l.offset, err)
		}
		if v.Version != stateVersion {
			return fmt.Errorf("load transaction state: transaction state of %q at offset %d: version %d, this broker reads %d", id, l.offset, v.Version, stateVersion)
		}
		states[id] = v.txnState
	}
	for id, st := range states {
		c.install(&entry{id: id}, st)
	}
	return nil
}
