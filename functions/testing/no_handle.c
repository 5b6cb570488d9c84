/* no_handle: exports wisp_abi_version but no wisp_handle. */
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()
