package meta

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// snapshot is the JSON document kept in meta.json (see docs/format.md).
type snapshot struct {
	Version         int    `json:"version"`
	ClusterID       string `json:"cluster_id"`
	BrokerID        int32  `json:"broker_id"`
	ProducerIDLimit int64  `json:"producer_id_limit"` // ids below this may have been handed out
	// Journal is the generation of the journal that follows the snapshot:
	// its changes apply on top of this document. 0 (absent, as in files
	// written before the journal existed) means none does.
	Journal uint64  `json:"journal,omitempty"`
	Topics  []Topic `json:"topics"`
	// BrokerConfigs are the dynamic broker configs by entity ("" the
	// cluster-wide default, else a broker id); absent when none are set.
	BrokerConfigs map[string]map[string]string `json:"broker_configs,omitempty"`
}

const journalPrefix = "meta.log."

// journalName is the file name of the journal of generation gen.
func journalName(gen uint64) string { return journalPrefix + strconv.FormatUint(gen, 10) }

// parseJournalName returns the generation of a journal file name.
func parseJournalName(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, journalPrefix)
	if !ok || digits == "" || digits[0] == '0' {
		return 0, false
	}
	gen, err := strconv.ParseUint(digits, 10, 64)
	return gen, err == nil
}

// encodeSnapshot returns the snapshot of st followed by journal gen.
func encodeSnapshot(st *state, gen uint64) ([]byte, error) {
	snap := snapshot{
		Version:         1,
		ClusterID:       st.clusterID,
		BrokerID:        st.brokerID,
		ProducerIDLimit: st.producerIDLimit,
		Journal:         gen,
		Topics:          make([]Topic, 0, len(st.names)),
		BrokerConfigs:   st.brokerConfigs,
	}
	for _, t := range st.sortedTopics() {
		snap.Topics = append(snap.Topics, *t)
	}
	data, err := json.MarshalIndent(&snap, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode metadata: %w", err)
	}
	return data, nil
}

// decodeSnapshot parses the content of the snapshot at path.
func decodeSnapshot(path string, data []byte) (st *state, journal uint64, err error) {
	var snap snapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return nil, 0, fmt.Errorf("parse metadata %s: %w", path, err)
	}
	if snap.Version != 1 {
		return nil, 0, fmt.Errorf("metadata %s: unsupported version %d", path, snap.Version)
	}
	st = &state{
		clusterID:       snap.ClusterID,
		brokerID:        snap.BrokerID,
		producerIDLimit: snap.ProducerIDLimit,
		topics:          make(map[string]*Topic, len(snap.Topics)),
	}
	create := entry{Op: opCreateTopics, Topics: snap.Topics}
	if err := st.check(&create); err != nil {
		return nil, 0, fmt.Errorf("metadata %s lists an impossible topic: %w", path, err)
	}
	st.apply(&create)
	for entity, configs := range snap.BrokerConfigs {
		if err := checkBrokerEntity(entity); err != nil {
			return nil, 0, fmt.Errorf("metadata %s: %w", path, err)
		}
		st.setBrokerConfigs(entity, configs)
	}
	return st, snap.Journal, nil
}
