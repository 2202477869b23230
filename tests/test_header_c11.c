/* The public header alone compiles as strict C11 (-std=c11 -pedantic
 * -Werror, see tests/meson.build) and its macros are usable. */
#include "cairn.h"

#include <stdio.h>
#include <string.h>

int main(void) {
    cairn_options o;
    cairn_options_init(&o);
    if (o.durability != CAIRN_DURABILITY_SYNC) return 1;
    if (strcmp(cairn_status_name(CAIRN_ECORRUPT), "CAIRN_ECORRUPT") != 0) return 1;
    printf("1 passed, 0 failed\n");
    return 0;
}
