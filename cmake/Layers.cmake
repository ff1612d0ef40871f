# The include direction, enforced: each layer compiles against an include
# root that holds only the folders it may see (symbolic links into the
# source tree), so a header from a layer above does not resolve. protocol/
# and tls/ see only themselves; proxy/common sees tls/; the protocol engines
# see common/; the data path sees engines and operations; the commands see
# everything.
function(dbward_layer target)
  cmake_parse_arguments(L "" "" "DIRS" ${ARGN})
  set(root ${PROJECT_BINARY_DIR}/include-roots/${target})
  foreach(dir IN LISTS L_DIRS)
    get_filename_component(parent ${root}/${dir} DIRECTORY)
    file(MAKE_DIRECTORY ${parent})
    if(NOT EXISTS ${root}/${dir})
      file(CREATE_LINK ${PROJECT_SOURCE_DIR}/${dir} ${root}/${dir} SYMBOLIC)
    endif()
  endforeach()
  target_include_directories(${target} PUBLIC ${root})
endfunction()
