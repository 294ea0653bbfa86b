#!/bin/bash
# java_counter: a Java program (the JVM: JIT and GC threads, a
# ConcurrentHashMap, a PrintWriter on an O_APPEND file) appending a counter
# to $CR_DIR/counter every 20 ms; after restart the counter goes on from
# where it was (java_counter.check). Skipped without a JDK.
. "${BASH_SOURCE%/*}/cr.sh"
java=$(command -v java) || ksft_exit_skip "no java"
cat >"$CR_DIR/Counter.java" <<'JAVA'
import java.io.*;
import java.nio.file.*;
import java.util.concurrent.ConcurrentHashMap;
public class Counter {
    public static void main(String[] args) throws Exception {
        String dir = System.getenv("CR_DIR");
        PrintWriter out = new PrintWriter(new FileWriter(dir + "/counter", true), true);
        ConcurrentHashMap<Integer, Long> seen = new ConcurrentHashMap<>();
        for (long i = 0;; i++) {
            seen.put((int) (i % 1000), i);
            out.println(i);
            if (i == 10) {
                Files.createFile(Paths.get(dir, "ready.tmp"));
                Files.move(Paths.get(dir, "ready.tmp"), Paths.get(dir, "ready"));
            }
            Thread.sleep(20);
        }
    }
}
JAVA
exec "$java" -Xmx64m -Xss1m "$CR_DIR/Counter.java"
