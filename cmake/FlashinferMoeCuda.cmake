# Decides whether CUDA is compiled and turns FLASHINFER_MOE_CUDA_ARCHS ("80;90a;100a") into
# explicit -gencode flags (sm_90a needs the gencode form for wgmma; see README).
include(CheckLanguage)

set(FLASHINFER_MOE_HAS_CUDA OFF)
if(NOT FLASHINFER_MOE_ENABLE_CUDA STREQUAL "OFF")
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(CMAKE_CUDA_ARCHITECTURES OFF)
    enable_language(CUDA)
    set(FLASHINFER_MOE_HAS_CUDA ON)
  elseif(FLASHINFER_MOE_ENABLE_CUDA STREQUAL "ON")
    message(FATAL_ERROR "FLASHINFER_MOE_ENABLE_CUDA=ON but no CUDA compiler was found")
  endif()
endif()

set(FLASHINFER_MOE_GENCODE_FLAGS "")
if(FLASHINFER_MOE_HAS_CUDA)
  find_package(CUDAToolkit REQUIRED)
  foreach(arch IN LISTS FLASHINFER_MOE_CUDA_ARCHS)
    if(NOT arch MATCHES "^[0-9]+[af]?$")
      message(FATAL_ERROR "FLASHINFER_MOE_CUDA_ARCHS entry '${arch}' is not like 80, 90a or 100a")
    endif()
    list(APPEND FLASHINFER_MOE_GENCODE_FLAGS "-gencode=arch=compute_${arch},code=sm_${arch}")
  endforeach()
  message(STATUS "flashinfer-moe: CUDA ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${FLASHINFER_MOE_CUDA_ARCHS}")
else()
  message(STATUS "flashinfer-moe: CPU-only build (no CUDA compiler, or FLASHINFER_MOE_ENABLE_CUDA=OFF)")
endif()

# CUTLASS/CuTe headers come from the pinned nvidia-cutlass wheel (cutlass_library/source/include),
# located without importing it; FLASHINFER_MOE_CUTLASS_DIR overrides.
function(flashinfer_moe_find_cutlass out_var)
  if(FLASHINFER_MOE_CUTLASS_DIR)
    set(${out_var} "${FLASHINFER_MOE_CUTLASS_DIR}" PARENT_SCOPE)
    return()
  endif()
  find_package(Python COMPONENTS Interpreter QUIET)
  if(Python_EXECUTABLE)
    execute_process(
      COMMAND "${Python_EXECUTABLE}" -c
        "import importlib.util as u, os; s = u.find_spec('cutlass_library'); print(os.path.join(list(s.submodule_search_locations)[0], 'source', 'include') if s else '')"
      OUTPUT_VARIABLE dir OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(dir AND EXISTS "${dir}/cutlass/cutlass.h")
      set(${out_var} "${dir}" PARENT_SCOPE)
      return()
    endif()
  endif()
  set(${out_var} "" PARENT_SCOPE)
endfunction()
