# BoringSSL: Debian's android-libboringssl-dev by default. Point BORINGSSL_ROOT at
# your own build (with include/ and lib/ or the build tree's ssl/ crypto/) or set
# BORINGSSL_INCLUDE_DIR and BORINGSSL_LIB_DIR directly.
set(BORINGSSL_ROOT "" CACHE PATH "Root of a BoringSSL install or build tree")
if(BORINGSSL_ROOT)
  set(_bssl_inc_default "${BORINGSSL_ROOT}/include")
  set(_bssl_lib_default "${BORINGSSL_ROOT}/lib")
else()
  set(_bssl_inc_default "/usr/include/android")
  set(_bssl_lib_default "/usr/lib/x86_64-linux-gnu/android")
endif()
set(BORINGSSL_INCLUDE_DIR "${_bssl_inc_default}" CACHE PATH "BoringSSL headers (contains openssl/ssl.h)")
set(BORINGSSL_LIB_DIR "${_bssl_lib_default}" CACHE PATH "BoringSSL libssl and libcrypto")

find_library(BORINGSSL_SSL_LIBRARY NAMES ssl PATHS "${BORINGSSL_LIB_DIR}" "${BORINGSSL_ROOT}/ssl" NO_DEFAULT_PATH)
find_library(BORINGSSL_CRYPTO_LIBRARY NAMES crypto PATHS "${BORINGSSL_LIB_DIR}" "${BORINGSSL_ROOT}/crypto" NO_DEFAULT_PATH)
if(NOT EXISTS "${BORINGSSL_INCLUDE_DIR}/openssl/base.h" OR NOT BORINGSSL_SSL_LIBRARY OR NOT BORINGSSL_CRYPTO_LIBRARY)
  message(FATAL_ERROR "BoringSSL not found (headers: ${BORINGSSL_INCLUDE_DIR}, libs: ${BORINGSSL_LIB_DIR}). "
                      "Install android-libboringssl-dev or set BORINGSSL_ROOT.")
endif()
file(STRINGS "${BORINGSSL_INCLUDE_DIR}/openssl/base.h" _bssl_api REGEX "define BORINGSSL_API_VERSION")
if(NOT _bssl_api)
  message(FATAL_ERROR "${BORINGSSL_INCLUDE_DIR} is not BoringSSL (no BORINGSSL_API_VERSION); refusing to build against OpenSSL")
endif()

add_library(boringssl::crypto UNKNOWN IMPORTED)
set_target_properties(boringssl::crypto PROPERTIES
  IMPORTED_LOCATION "${BORINGSSL_CRYPTO_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${BORINGSSL_INCLUDE_DIR}")
add_library(boringssl::ssl UNKNOWN IMPORTED)
set_target_properties(boringssl::ssl PROPERTIES
  IMPORTED_LOCATION "${BORINGSSL_SSL_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${BORINGSSL_INCLUDE_DIR}"
  INTERFACE_LINK_LIBRARIES boringssl::crypto)

get_filename_component(_bssl_rpath "${BORINGSSL_SSL_LIBRARY}" DIRECTORY)
list(APPEND CMAKE_BUILD_RPATH "${_bssl_rpath}")
list(APPEND CMAKE_INSTALL_RPATH "${_bssl_rpath}")
message(STATUS "BoringSSL: ${BORINGSSL_SSL_LIBRARY} (headers ${BORINGSSL_INCLUDE_DIR})")
