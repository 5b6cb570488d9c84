# wisp_add_function(<name> <source>...)
#
# Builds <name>.so, a wisp function module, from C or C++ sources. Usable from
# the wisp tree and from a user's own CMake project:
#
#   include(/path/to/wisp/cmake/WispFunction.cmake)
#   wisp_add_function(hello hello.c)
#
# The module gets the wisp ABI headers on its include path, hidden default
# symbol visibility (only WISP_EXPORT symbols are exported) and no "lib" prefix.
set(WISP_FUNCTION_INCLUDE_DIR "${CMAKE_CURRENT_LIST_DIR}/../functions/include"
    CACHE PATH "Directory holding wisp/function.h")

function(wisp_add_function name)
  if(ARGC LESS 2)
    message(FATAL_ERROR "wisp_add_function(${name}) needs at least one source file")
  endif()
  add_library(${name} MODULE ${ARGN})
  target_include_directories(${name} PRIVATE "${WISP_FUNCTION_INCLUDE_DIR}")
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    SUFFIX ".so"
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_link_options(${name} PRIVATE -Wl,--no-undefined -Wl,-z,defs)
  set_property(GLOBAL APPEND PROPERTY WISP_FUNCTION_TARGETS ${name})
endfunction()
