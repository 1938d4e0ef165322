package storage

import (
	"hash/maphash"
	"math/bits"
)

// offsetMap maps record keys to the latest offset seen for them during one
// cleaner pass, as Kafka's SkinnyOffsetMap does: keys are not stored, only
// a 128-bit hash of each (two independent 64-bit seeded hashes), so memory
// per key is fixed at 24 bytes whatever the key's size. A collision between
// two live keys (probability about n²/2¹²⁹) would drop the older one's
// latest value; Kafka accepts the same risk with MD5.
//
// The table is open-addressed with linear probing, grows by doubling up to
// maxSlots and holds at most 3/4 of its slots. Not safe for concurrent use.
type offsetMap struct {
	slots    []offsetSlot
	size     int
	maxSlots int
	seed1    maphash.Seed
	seed2    maphash.Seed
}

// offsetSlot is one table entry; offset+1 is stored so the zero slot is
// empty.
type offsetSlot struct {
	h1, h2 uint64
	offset int64
}

const (
	offsetSlotBytes    = 24
	minOffsetMapSlots  = 1 << 10
	offsetMapLoadNum   = 3 // load factor 3/4
	offsetMapLoadDenom = 4
)

// newOffsetMap returns a map that may use up to memBytes for its table.
func newOffsetMap(memBytes int64) *offsetMap {
	limit := max(memBytes/offsetSlotBytes, minOffsetMapSlots)
	maxSlots := 1 << (bits.Len64(uint64(limit)) - 1) // largest power of two <= limit
	return &offsetMap{maxSlots: maxSlots, seed1: maphash.MakeSeed(), seed2: maphash.MakeSeed()}
}

// capacity is how many keys the map can hold at its largest.
func (m *offsetMap) capacity() int { return m.maxSlots / offsetMapLoadDenom * offsetMapLoadNum }

// reset empties the map, keeping its table.
func (m *offsetMap) reset() {
	clear(m.slots)
	m.size = 0
}

// hash returns the key's two hashes.
func (m *offsetMap) hash(key []byte) (uint64, uint64) {
	return maphash.Bytes(m.seed1, key), maphash.Bytes(m.seed2, key)
}

// put records offset as the latest for key. It reports false, changing
// nothing, when the map is full.
func (m *offsetMap) put(key []byte, offset int64) bool {
	h1, h2 := m.hash(key)
	if len(m.slots) == 0 || (m.size+1)*offsetMapLoadDenom > len(m.slots)*offsetMapLoadNum {
		if !m.grow() {
			if i, found := m.find(h1, h2); found {
				m.slots[i].offset = offset + 1
				return true
			}
			return false
		}
	}
	i, found := m.find(h1, h2)
	if !found {
		m.slots[i].h1, m.slots[i].h2 = h1, h2
		m.size++
	}
	m.slots[i].offset = offset + 1
	return true
}

// get returns the latest offset recorded for key.
func (m *offsetMap) get(key []byte) (int64, bool) {
	if m.size == 0 {
		return 0, false
	}
	i, found := m.find(m.hash(key))
	if !found {
		return 0, false
	}
	return m.slots[i].offset - 1, true
}

// find returns the slot holding the hash, or the empty slot where it would
// go. The table always has an empty slot.
func (m *offsetMap) find(h1, h2 uint64) (int, bool) {
	mask := len(m.slots) - 1
	for i := int(h1) & mask; ; i = (i + 1) & mask {
		s := &m.slots[i]
		if s.offset == 0 {
			return i, false
		}
		if s.h1 == h1 && s.h2 == h2 {
			return i, true
		}
	}
}

// grow doubles the table (or allocates the first one); false when it is
// already as large as allowed.
func (m *offsetMap) grow() bool {
	n := min(minOffsetMapSlots, m.maxSlots)
	if len(m.slots) > 0 {
		n = len(m.slots) * 2
	}
	if n > m.maxSlots {
		return false
	}
	old := m.slots
	m.slots = make([]offsetSlot, n)
	mask := n - 1
	for _, s := range old {
		if s.offset == 0 {
			continue
		}
		i := int(s.h1) & mask
		for m.slots[i].offset != 0 {
			i = (i + 1) & mask
		}
		m.slots[i] = s
	}
	return true
}
