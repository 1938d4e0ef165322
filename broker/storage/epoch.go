package storage

import "sort"

// epochCache is the leader-epoch cache: for each leader epoch that wrote to
// this partition, the first offset written in it, ascending. Guarded by
// Log.mu; persisted in leader-epoch-checkpoint whenever it changes.
type epochCache []EpochEntry

func (c epochCache) latest() int32 {
	if len(c) == 0 {
		return -1
	}
	return c[len(c)-1].Epoch
}

// assign records that epoch starts at offset, if it is newer than the
// latest epoch. Entries starting at or after offset (epochs that began
// leading at the log end and wrote nothing) are replaced, as Kafka's
// cache does. It reports whether the cache changed.
func (c *epochCache) assign(epoch int32, offset int64) bool {
	if epoch < 0 || epoch <= c.latest() {
		return false
	}
	c.truncateFromEnd(offset)
	*c = append(*c, EpochEntry{Epoch: epoch, StartOffset: offset})
	return true
}

// truncateFromEnd drops the epochs that start at or after endOffset (the
// log was truncated to endOffset). It reports whether the cache changed.
func (c *epochCache) truncateFromEnd(endOffset int64) bool {
	i := sort.Search(len(*c), func(i int) bool { return (*c)[i].StartOffset >= endOffset })
	if i == len(*c) {
		return false
	}
	*c = (*c)[:i]
	return true
}

// truncateFromStart drops the epochs wholly below startOffset (the log
// start advanced), moving the start of the epoch holding startOffset up to
// it. It reports whether the cache changed.
func (c *epochCache) truncateFromStart(startOffset int64) bool {
	// i is the first entry starting after startOffset; entry i-1 holds it.
	i := sort.Search(len(*c), func(i int) bool { return (*c)[i].StartOffset > startOffset })
	if i == 0 {
		return false
	}
	changed := i > 1 || (*c)[0].StartOffset != startOffset
	if !changed {
		return false
	}
	rest := (*c)[i-1:]
	rest[0].StartOffset = startOffset
	*c = append((*c)[:0], rest...)
	return true
}

// endOffsetFor answers OffsetForLeaderEpoch the way Kafka's
// LeaderEpochFileCache.endOffsetFor does: for the latest epoch the log end
// offset; otherwise the largest epoch <= epoch and the start offset of the
// first epoch after it; (-1, -1) when epoch is newer than every epoch
// known or the cache is empty. An epoch older than the first known returns
// the requested epoch with the first epoch's start offset.
func (c epochCache) endOffsetFor(epoch int32, logEndOffset int64) (int32, int64) {
	if epoch < 0 || len(c) == 0 {
		return -1, -1
	}
	if epoch == c.latest() {
		return epoch, logEndOffset
	}
	higher := sort.Search(len(c), func(i int) bool { return c[i].Epoch > epoch })
	if higher == len(c) {
		return -1, -1
	}
	if higher == 0 {
		return epoch, c[0].StartOffset
	}
	return c[higher-1].Epoch, c[higher].StartOffset
}
