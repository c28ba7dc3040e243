package com.facesegtool.core;

/**
 * Whole-head parsing, a port of facesegtool/head.py that gives the same mask to the bit (golden
 * files prove it): the face crop's class scores (S x S, for detail) merged with those of a wide box
 * twice its side around it (S x S, for the hair beyond the crop) onto a 2S x 2S grid over the wide
 * box. The wide scores are upsampled 2x (bilinear, pixel centres, weights 1/4 and 3/4); inside the
 * crop's window (at x = S/2, y = S/4) they blend with the crop's as w * detail + (1 - w) * wide,
 * with w ramping from 1/F on the crop's edge to 1 at F = S/8 pixels inside, so no seam shows where
 * the crop ends. Scores are logits, row major H x W x C floats; every step is float32, in the same
 * order as numpy evaluates it.
 */
public final class HeadMerge {
    private HeadMerge() {}

    /** The wide box's side in face-crop sides. */
    public static final int WIDE = 2;
    /** The face crop's top lies side / TOP below the wide box's top. */
    public static final int TOP = 4;
    /** The blend ramp is S / FEATHER model pixels wide. */
    public static final int FEATHER = 8;

    /** {x, y} of the face crop's S x S window in the 2S x 2S grid. */
    public static int[] window(int size) {
        return new int[] {(size * (WIDE - 1)) / 2, size / TOP};
    }

    /** 2x bilinear upsample of h x w x c scores (edges clamped), rows first, as head.upsample2. */
    public static float[] upsample2(float[] in, int h, int w, int c) {
        float[] rows = new float[2 * h * w * c];
        final float q = 0.25f, t = 0.75f;
        for (int i = 0; i < h; i++) {
            int up = Math.max(i - 1, 0), down = Math.min(i + 1, h - 1);
            for (int j = 0; j < w * c; j++) {
                float a = in[i * w * c + j], p = in[up * w * c + j], n = in[down * w * c + j];
                rows[(2 * i) * w * c + j] = q * p + t * a;
                rows[(2 * i + 1) * w * c + j] = t * a + q * n;
            }
        }
        int h2 = 2 * h, w2 = 2 * w;
        float[] out = new float[h2 * w2 * c];
        for (int y = 0; y < h2; y++) {
            int row = y * w * c, orow = y * w2 * c;
            for (int x = 0; x < w; x++) {
                int left = Math.max(x - 1, 0), right = Math.min(x + 1, w - 1);
                for (int k = 0; k < c; k++) {
                    float a = rows[row + x * c + k], p = rows[row + left * c + k], n = rows[row + right * c + k];
                    out[orow + (2 * x) * c + k] = q * p + t * a;
                    out[orow + (2 * x + 1) * c + k] = t * a + q * n;
                }
            }
        }
        return out;
    }

    /** S x S detail weights, row major: min(k, F) / F with k = 1 on the edge pixels, +1 per pixel inwards. */
    public static float[] featherWeights(int size) {
        int f = Math.max(1, size / FEATHER);
        float[] out = new float[size * size];
        for (int y = 0; y < size; y++) {
            int ky = Math.min(y + 1, size - y);
            for (int x = 0; x < size; x++) {
                int k = Math.min(Math.min(ky, Math.min(x + 1, size - x)), f);
                out[y * size + x] = (float) k / (float) f;
            }
        }
        return out;
    }

    /** The crop's weight over the whole 2S x 2S grid (0 outside the crop's window). */
    public static float[] detailWeights(int size) {
        int g = WIDE * size;
        int[] o = window(size);
        float[] feather = featherWeights(size);
        float[] out = new float[g * g];
        for (int y = 0; y < size; y++) System.arraycopy(feather, y * size, out, (o[1] + y) * g + o[0], size);
        return out;
    }

    /** S x S x C logits of the face crop and of the wide box -> 2S x 2S x C merged logits. */
    public static float[] merge(float[] detail, float[] wide, int size, int classes) {
        if (detail.length != size * size * classes || wide.length != detail.length) {
            throw new IllegalArgumentException("merge takes two " + size + "x" + size + "x" + classes + " score maps");
        }
        float[] merged = upsample2(wide, size, size, classes);
        int g = WIDE * size;
        int[] o = window(size);
        float[] w = featherWeights(size);
        for (int y = 0; y < size; y++) {
            for (int x = 0; x < size; x++) {
                float wd = w[y * size + x], ww = 1f - wd;
                int d = (y * size + x) * classes, m = ((o[1] + y) * g + o[0] + x) * classes;
                for (int k = 0; k < classes; k++) merged[m + k] = wd * detail[d + k] + ww * merged[m + k];
            }
        }
        return merged;
    }

    /** Class per pixel of h*w x c scores: the first maximum (as numpy's argmax). */
    public static byte[] argmax(float[] scores, int pixels, int classes) {
        byte[] mask = new byte[pixels];
        for (int i = 0; i < pixels; i++) {
            int o = i * classes, best = 0;
            float bv = scores[o];
            for (int k = 1; k < classes; k++) {
                if (scores[o + k] > bv) {
                    bv = scores[o + k];
                    best = k;
                }
            }
            mask[i] = (byte) best;
        }
        return mask;
    }
}
