// SPDX-License-Identifier: MIT
// A stand-in for Anycubic's stock camera service (gkcam) for the handover tests: each start
// appends "<pid> <working folder> <LD_LIBRARY_PATH>" to "<its own path>.state", then it waits for
// a signal. Tests copy it to a folder of their own so that its path is unique.
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
  char self[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 7);
  if (n <= 0) return 1;
  self[n] = '\0';
  strcat(self, ".state");
  char cwd[PATH_MAX];
  if (getcwd(cwd, sizeof cwd) == NULL) strcpy(cwd, "?");
  const char* lib = getenv("LD_LIBRARY_PATH");
  FILE* f = fopen(self, "a");
  if (f == NULL) return 1;
  fprintf(f, "%d %s %s\n", (int)getpid(), cwd, lib != NULL ? lib : "");
  fclose(f);
  for (;;) pause();
}
