#ifndef SG_QUANT_H
#define SG_QUANT_H
/*
 * quant.h (internal to engine/): dequantization of the block formats llama.cpp/ggml writes into
 * GGUF files. Each function converts `nb` whole blocks at `src` (any alignment) into
 * nb * (block elements) floats at `dst`. Byte layouts, little-endian, no padding:
 *
 *   Q8_0 (32 values, 34 bytes):   f16 d | int8 q[32]                     x[i] = d * q[i]
 *   Q4_0 (32 values, 18 bytes):   f16 d | u8 qs[16]
 *                                 x[i]      = d * ((qs[i] & 15) - 8)     i = 0..15
 *                                 x[i + 16] = d * ((qs[i] >> 4) - 8)
 *   Q4_K (256 values, 144 bytes): f16 d | f16 dmin | u8 scales[12] | u8 qs[128]
 *                                 eight sub-blocks of 32 with 6-bit scale sc[j] and min m[j]
 *                                 (packing: see q4k_scale_min in quant.c);
 *                                 x = d * sc[j] * q - dmin * m[j], q a 4-bit quant; sub-block
 *                                 2k takes the low nibbles of qs[32k..32k+31], 2k+1 the high.
 *   Q5_K (256 values, 176 bytes): f16 d | f16 dmin | u8 scales[12] | u8 qh[32] | u8 qs[128]
 *                                 as Q4_K, with q = 4-bit quant + 16 * bit j of qh[l] for
 *                                 sub-block j, l = position in the sub-block.
 *   Q6_K (256 values, 210 bytes): u8 ql[128] | u8 qh[64] | int8 scales[16] | f16 d (last)
 *                                 x = d * scales[i / 16] * (q - 32), q a 6-bit quant made of
 *                                 4 bits from ql and 2 bits from qh (see quant.c).
 */

#include <stddef.h>
#include <stdint.h>

#define SG_Q8_0_BLOCK 32
#define SG_Q8_0_BYTES 34
#define SG_Q4_0_BLOCK 32
#define SG_Q4_0_BYTES 18
#define SG_QK_K 256
#define SG_Q4_K_BYTES 144
#define SG_Q5_K_BYTES 176
#define SG_Q6_K_BYTES 210

/* Dequantize `nb` Q8_0 blocks at `src` into 32 * nb floats at `dst`. */
void sg_dequant_q8_0(const void *src, float *dst, int64_t nb);
/* Dequantize `nb` Q4_0 blocks at `src` into 32 * nb floats at `dst`. */
void sg_dequant_q4_0(const void *src, float *dst, int64_t nb);
/* Dequantize `nb` Q4_K super-blocks at `src` into 256 * nb floats at `dst`. */
void sg_dequant_q4_k(const void *src, float *dst, int64_t nb);
/* Dequantize `nb` Q5_K super-blocks at `src` into 256 * nb floats at `dst`. */
void sg_dequant_q5_k(const void *src, float *dst, int64_t nb);
/* Dequantize `nb` Q6_K super-blocks at `src` into 256 * nb floats at `dst`. */
void sg_dequant_q6_k(const void *src, float *dst, int64_t nb);

#endif /* SG_QUANT_H */
