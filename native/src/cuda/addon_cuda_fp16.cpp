// The Node-API glue of the fp16 build of the CUDA backend (namespace.h): addon_cuda.cpp again, in bp::cuda_fp16.
#define BP_CUDA_FP16 1
#include "addon_cuda.cpp"
