package config
import ("os";"testing")
func BenchmarkParseFull(b *testing.B){
	data,_ := os.ReadFile("testdata/full.good.yaml")
	for b.Loop() { Parse(data) }
}
