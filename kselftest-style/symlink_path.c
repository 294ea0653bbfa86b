// SPDX-License-Identifier: MIT
/*
 * symlink_path: symbolic links themselves, opened with O_PATH|O_NOFOLLOW:
 * "kept" stays in place, "removed" was unlinked after it was opened. After
 * restart both fds are on symlinks that point where they did, and the
 * directory holds nothing but what the subject left there.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <sys/stat.h>

#include "cr.h"

static int is_link_to(int fd, const char *want)
{
	char buf[256];
	struct stat st;
	ssize_t n;

	if (fstat(fd, &st) || !S_ISLNK(st.st_mode))
		return 0;
	n = readlinkat(fd, "", buf, sizeof(buf) - 1);
	if (n < 0)
		return 0;
	buf[n] = 0;
	return !strcmp(buf, want);
}

static int entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

int main(void)
{
	int kept, removed;

	cr_init();
	ksft_print_header();
	ksft_set_plan(3);
	if (mkdir(cr_path("links"), 0700) || symlink("/target/kept", cr_path("links/kept")) ||
	    symlink("../target/removed", cr_path("links/removed")))
		ksft_exit_fail_msg("setup: %s", strerror(errno));
	kept = open(cr_path("links/kept"), O_PATH | O_NOFOLLOW);
	removed = open(cr_path("links/removed"), O_PATH | O_NOFOLLOW);
	if (kept < 0 || removed < 0 || unlink(cr_path("links/removed")))
		ksft_exit_fail_msg("setup: %s", strerror(errno));

	cr_ready();
	cr_wait_sigterm();

	ksft_test_result(is_link_to(kept, "/target/kept"), "the kept symlink's fd is on it");
	ksft_test_result(is_link_to(removed, "../target/removed"), "the removed symlink's fd is on one pointing where it did");
	ksft_test_result(entries(cr_path("links")) == 1, "the directory holds only the kept link (%d entries)",
			 entries(cr_path("links")));
	ksft_finished();
}
