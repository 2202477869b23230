// The public header compiles as C++ and links from C++.
#include "cairn.h"

#include <cstdio>
#include <cstring>

int main() {
    cairn_options o;
    cairn_options_init(&o);
    cairn_db *db = nullptr;
    if (cairn_close(db) != CAIRN_OK) return 1;
    if (std::strcmp(cairn_strerror(CAIRN_OK), "success") != 0) return 1;
    std::printf("1 passed, 0 failed\n");
    return 0;
}
