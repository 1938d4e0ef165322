//go:build !race

package broker

// raceEnabled reports a race-detector build, whose shadow memory distorts
// heap figures.
const raceEnabled = false
