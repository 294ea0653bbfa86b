// Command go_http is a kselftest-style subject: a Go HTTP server (many
// runtime threads, the netpoller's epoll and eventfd, signals, futexes)
// counting hits in memory, with a child it started with os/exec (held
// through a pidfd: Go's os.StartProcess keeps one). It serves two requests
// to itself, writes its port and then the ready file into $CR_DIR, and
// serves on; /child stops the child through the pidfd and reports how it
// ended.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
)

func main() {
	dir := os.Getenv("CR_DIR")
	var hits atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("Bail out! listen:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hit %d\n", hits.Add(1))
	})
	child := exec.Command("sleep", "1000")
	if err := child.Start(); err != nil {
		fmt.Println("Bail out! starting a child:", err)
		os.Exit(1)
	}
	mux.HandleFunc("/child", func(w http.ResponseWriter, r *http.Request) {
		err := child.Process.Signal(syscall.SIGTERM)
		st, werr := child.Process.Wait()
		fmt.Fprintf(w, "child: %v %v %v\n", err, werr, st)
	})
	go http.Serve(ln, mux)
	url := fmt.Sprintf("http://%s/", ln.Addr())
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for want := 1; want <= 2; want++ {
		resp, err := client.Get(url)
		if err != nil {
			fmt.Println("Bail out! self request:", err)
			os.Exit(1)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != fmt.Sprintf("hit %d\n", want) {
			fmt.Printf("Bail out! self request %d: %q\n", want, body)
			os.Exit(1)
		}
	}
	fmt.Printf("# setup ok: serving on %s\n", ln.Addr())
	os.WriteFile(filepath.Join(dir, "port"), []byte(fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)), 0o644)
	os.WriteFile(filepath.Join(dir, "ready.tmp"), nil, 0o644)
	os.Rename(filepath.Join(dir, "ready.tmp"), filepath.Join(dir, "ready"))
	select {}
}
