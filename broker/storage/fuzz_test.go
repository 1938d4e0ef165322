package storage

import (
	"bytes"
	"testing"
)

// FuzzCheckpoint feeds arbitrary bytes to every checkpoint decoder: they
// must never panic, and whatever they accept must re-encode to the same
// bytes.
func FuzzCheckpoint(f *testing.F) {
	ps := producerStates{}
	ps[5] = &producerEntry{epoch: 1, n: 2, lastTimestamp: 99, txnFirst: -1, batches: [producerWindow]producerBatch{{0, 4, 10, 4}, {5, 5, 20, 0}}}
	for _, seed := range [][]byte{
		frameCheckpoint(magicRecoveryPoint, recoveryPoint{Offset: 100, SegmentBase: 50, Position: 4096}.encode()),
		frameCheckpoint(magicLogStart, encodeOffset(42)),
		frameCheckpoint(magicCleanShutdown, encodeOffset(7)),
		frameCheckpoint(magicEpochs, encodeEpochs([]EpochEntry{{0, 0}, {3, 100}})),
		frameCheckpoint(magicProducers, ps.encode()),
		frameCheckpoint(magicProducers, producerStates{}.encode()),
		frameCheckpoint(magicCleaner, (&cleanerState{firstDirty: 100, gapBound: 120, swapBase: 50, swapEnd: 80, tombstones: []tombstoneRange{{1, 5, 1000}, {90, 110, 3000}}}).encode()),
		frameCheckpoint(magicCleaner, (&cleanerState{swapBase: -1, swapEnd: -1}).encode()),
		{},
		[]byte("GRRP\x00\x01"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := unframeCheckpoint(magicRecoveryPoint, b); err == nil {
			if rp, err := decodeRecoveryPoint(p); err == nil && !bytes.Equal(frameCheckpoint(magicRecoveryPoint, rp.encode()), b) {
				t.Fatal("recovery point does not round-trip")
			}
		}
		for _, m := range [][4]byte{magicLogStart, magicCleanShutdown} {
			if p, err := unframeCheckpoint(m, b); err == nil {
				if off, err := decodeOffset(p); err == nil && !bytes.Equal(frameCheckpoint(m, encodeOffset(off)), b) {
					t.Fatal("offset does not round-trip")
				}
			}
		}
		if p, err := unframeCheckpoint(magicEpochs, b); err == nil {
			if e, err := decodeEpochs(p); err == nil && !bytes.Equal(frameCheckpoint(magicEpochs, encodeEpochs(e)), b) {
				t.Fatal("epochs do not round-trip")
			}
		}
		if p, err := unframeCheckpoint(magicProducers, b); err == nil {
			if st, err := decodeProducerStates(p); err == nil && !bytes.Equal(frameCheckpoint(magicProducers, st.encode()), b) {
				t.Fatal("producer snapshot does not round-trip")
			}
		}
		if p, err := unframeCheckpoint(magicCleaner, b); err == nil {
			if st, err := decodeCleanerState(p); err == nil && !bytes.Equal(frameCheckpoint(magicCleaner, st.encode()), b) {
				t.Fatal("cleaner checkpoint does not round-trip")
			}
		}
		// Payload decoders on raw bytes too, without a valid frame.
		_, _ = decodeRecoveryPoint(b)
		_, _ = decodeEpochs(b)
		_, _ = decodeProducerStates(b)
		if st, err := decodeCleanerState(b); err == nil {
			st.cleanedAt(int64(len(b)))
		}
	})
}
