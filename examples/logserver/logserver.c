/* A tiny logging server for `make demo`: it counts, appends a line per
 * tick to the log on fd 1, and keeps its counter in memory only, so a
 * restart that lost its state would start again from zero. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(void)
{
	unsigned long tick = 0;
	struct timespec pause = { 0, 200 * 1000 * 1000 };

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (;;) {
		printf("logserver pid %d: tick %lu\n", getpid(), tick++);
		nanosleep(&pause, NULL);
	}
}
