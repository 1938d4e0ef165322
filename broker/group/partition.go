package group

import "unicode/utf16"

// PartitionFor is the offsets-topic partition that holds a group, computed
// as Kafka does so that tools and clients agree on it:
// abs(groupID.hashCode()) % numPartitions, with Java's String.hashCode over
// UTF-16 code units and Kafka's Utils.abs (which maps MinInt32 to 0).
func PartitionFor(groupID string, numPartitions int32) int32 {
	if numPartitions <= 0 {
		return 0
	}
	h := javaStringHashCode(groupID)
	if h == -1<<31 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % numPartitions
}

// javaStringHashCode is java.lang.String.hashCode: s[0]*31^(n-1) + ... +
// s[n-1] over UTF-16 code units, in wrapping int32 arithmetic.
func javaStringHashCode(s string) int32 {
	var h int32
	for _, r := range s {
		if r >= 0x10000 {
			r1, r2 := utf16.EncodeRune(r)
			h = 31*h + r1
			h = 31*h + r2
			continue
		}
		h = 31*h + r
	}
	return h
}
