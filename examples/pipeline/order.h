/* The orders of the pipeline example, as one line of text:
 * "ID,ITEM,QUANTITY" (validate's input), then ",TOTAL" appended by price. */
#ifndef WISP_EXAMPLES_PIPELINE_ORDER_H_
#define WISP_EXAMPLES_PIPELINE_ORDER_H_

#include <stdio.h>
#include <string.h>

typedef struct order {
  char id[32];
  char item[32];
  long quantity;
} order;

/* Parses "ID,ITEM,QUANTITY"; 0 on success, else writes why to why. */
static inline int parse_order(const char* data, size_t len, order* out, char* why, size_t why_len) {
  char line[128];
  if (len == 0 || len >= sizeof(line)) {
    snprintf(why, why_len, "an order is one line of at most 127 bytes");
    return -1;
  }
  memcpy(line, data, len);
  line[len] = '\0';
  char extra;
  if (sscanf(line, "%31[^,],%31[^,],%ld%c", out->id, out->item, &out->quantity, &extra) != 3) {
    snprintf(why, why_len, "expected ID,ITEM,QUANTITY");
    return -1;
  }
  if (out->quantity <= 0 || out->quantity > 1000) {
    snprintf(why, why_len, "quantity %ld is not between 1 and 1000", out->quantity);
    return -1;
  }
  return 0;
}

#endif /* WISP_EXAMPLES_PIPELINE_ORDER_H_ */
