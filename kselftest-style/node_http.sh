#!/bin/bash
# node_http: a Node.js HTTP server (libuv's epoll loop, its thread pool, V8's
# threads) counting the requests it served; restored, it still serves on its
# port and the count goes on (node_http.check). Skipped without node.
. "${BASH_SOURCE%/*}/cr.sh"
node=$(command -v node) || ksft_exit_skip "no node"
exec "$node" -e '
const http = require("http"), fs = require("fs"), path = require("path");
const dir = process.env.CR_DIR;
let hits = 0;
const server = http.createServer((req, res) => { hits++; res.end("hits " + hits + "\n"); });
server.listen(0, "127.0.0.1", () => {
  const port = server.address().port;
  fs.writeFileSync(path.join(dir, "port"), String(port));
  http.get({ host: "127.0.0.1", port }, (res) => {
    res.resume();
    res.on("end", () => {
      fs.writeFileSync(path.join(dir, "ready.tmp"), "");
      fs.renameSync(path.join(dir, "ready.tmp"), path.join(dir, "ready"));
    });
  });
});
'
