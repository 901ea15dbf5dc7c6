package provision

import (
	"fmt"
	"testing"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/phone"
)

// BenchmarkNew1000 builds the catalog of an office of 1000 phones, half
// without a model (each checked against every configured model): the cost
// of a load or reload.
func BenchmarkNew1000(b *testing.B) {
	cfg := testConfig()
	for i := 0; i < 1000; i++ {
		m, _ := phone.ParseMAC(fmt.Sprintf("000413%06X", i+1))
		p := config.Phone{MAC: m, Settings: config.Settings{
			"user_name": {Indexed: map[int]config.IndexedValue{1: {Value: fmt.Sprint(1000 + i)}, 2: {Value: fmt.Sprint(2000 + i)}}},
		}, FKeys: config.FKeys{0: {Value: "line"}, 1: {Value: "blf sip:1@pbx"}}}
		if i%2 == 0 {
			p.Model = "snomD785"
		}
		cfg.Phones = append(cfg.Phones, p)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(cfg); err != nil {
			b.Fatal(err)
		}
	}
}
