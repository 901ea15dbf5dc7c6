package fieldtool

import (
	"errors"
	"testing"
)

type res bool

func (r res) OK() bool { return bool(r) }

func TestEachFailedErr(t *testing.T) {
	got := Each(5, func(i int) res { return i%2 == 0 })
	want := []res{true, false, true, false, true}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Each = %v, want %v (in order)", got, want)
		}
	}
	if n := Failed(got); n != 2 {
		t.Errorf("Failed = %d", n)
	}
	sentinel := errors.New("tool failed")
	err := Err(sentinel, got, "phone(s) did not answer")
	if !errors.Is(err, sentinel) || err.Error() != "tool failed: 2 of 5 phone(s) did not answer" {
		t.Errorf("Err = %v", err)
	}
	if err := Err(sentinel, []res{true}, "x"); err != nil {
		t.Errorf("all OK: %v", err)
	}
	if got := Each(0, func(int) res { return false }); len(got) != 0 {
		t.Errorf("Each(0) = %v", got)
	}
}
