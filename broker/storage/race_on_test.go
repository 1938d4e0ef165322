//go:build race

package storage

// raceEnabled reports a race-detector build, where the slowest tests
// sample their tables more sparsely.
const raceEnabled = true
