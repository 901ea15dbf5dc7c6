module github.com/snomprov/snomprov/test/browser

go 1.26.0

require (
	github.com/chromedp/chromedp v0.23.0
	github.com/snomprov/snomprov v0.0.0
)

require (
	github.com/chromedp/cdproto v0.159.0 // indirect
	github.com/emiago/sipgo v1.7.3 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/gobwas/pool v0.2.1 // indirect
	github.com/gobwas/ws v1.3.2 // indirect
	github.com/google/uuid v1.6.0 // indirect
	golang.org/x/sync v0.25.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace github.com/snomprov/snomprov => ../..
