package com.facesegtool.core;

/**
 * Geometry on packed ARGB pixels (0xAARRGGBB, row major, as Android's Bitmap.getPixels gives):
 * crops, rotation and mirroring, a bilinear resize for model input, the nearest-neighbour mask resize that
 * facesegtool.predict.effects.resize_mask_nearest uses, and the bilinear class-score upsampling of
 * facesegtool.imaging.upsample_scores (both bit-identical).
 */
public final class ImageOps {
    private ImageOps() {}

    /** A w x h window at (x0, y0); parts outside the image are opaque black. */
    public static int[] crop(int[] argb, int width, int height, int x0, int y0, int w, int h) {
        int[] out = new int[w * h];
        for (int y = 0; y < h; y++) {
            int sy = y0 + y;
            for (int x = 0; x < w; x++) {
                int sx = x0 + x;
                out[y * w + x] = (sy >= 0 && sy < height && sx >= 0 && sx < width) ? argb[sy * width + sx] : 0xFF000000;
            }
        }
        return out;
    }

    /**
     * The image rotated clockwise by degrees (0, 90, 180, 270), as Android's Matrix.postRotate
     * turns a camera frame upright; a 90 or 270 rotation swaps width and height.
     */
    public static int[] rotate(int[] argb, int width, int height, int degrees) {
        int d = ((degrees % 360) + 360) % 360;
        if (d % 90 != 0) throw new IllegalArgumentException("rotation " + degrees + " is not a multiple of 90");
        if (d == 0) return argb;
        int[] out = new int[argb.length];
        int ow = d == 180 ? width : height;
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) {
                int ox = d == 90 ? height - 1 - y : (d == 180 ? width - 1 - x : y);
                int oy = d == 90 ? x : (d == 180 ? height - 1 - y : width - 1 - x);
                out[oy * ow + ox] = argb[y * width + x];
            }
        }
        return out;
    }

    /** The image flipped left to right (the front camera's preview is shown mirrored). */
    public static int[] mirror(int[] argb, int width, int height) {
        int[] out = new int[argb.length];
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) out[y * width + width - 1 - x] = argb[y * width + x];
        }
        return out;
    }

    /** Side of the largest centred square of a w x h image. */
    public static int centreSquareSide(int width, int height) {
        return Math.min(width, height);
    }

    /** The largest centred square (what the camera path feeds the model and shows). */
    public static int[] centreSquare(int[] argb, int width, int height) {
        int side = centreSquareSide(width, height);
        return crop(argb, width, height, (width - side) / 2, (height - side) / 2, side, side);
    }

    /**
     * Bilinear resize with pixel-centre alignment (src = (dst + 0.5) * in / out - 0.5, edges
     * clamped), the convention of OpenCV's INTER_LINEAR; agrees with cv2.resize within 1 level
     * (OpenCV rounds its weights to 11-bit fixed point).
     */
    public static int[] resizeBilinear(int[] argb, int width, int height, int outW, int outH) {
        int[] x0 = new int[outW], x1 = new int[outW];
        float[] fx = new float[outW];
        axis(width, outW, x0, x1, fx);
        int[] y0 = new int[outH], y1 = new int[outH];
        float[] fy = new float[outH];
        axis(height, outH, y0, y1, fy);
        int[] out = new int[outW * outH];
        for (int y = 0; y < outH; y++) {
            int r0 = y0[y] * width, r1 = y1[y] * width;
            float wy = fy[y];
            for (int x = 0; x < outW; x++) {
                int a = argb[r0 + x0[x]], b = argb[r0 + x1[x]], c = argb[r1 + x0[x]], d = argb[r1 + x1[x]];
                float wx = fx[x];
                int px = 0xFF000000;
                for (int shift = 16; shift >= 0; shift -= 8) {
                    float top = ((a >> shift) & 255) * (1 - wx) + ((b >> shift) & 255) * wx;
                    float bottom = ((c >> shift) & 255) * (1 - wx) + ((d >> shift) & 255) * wx;
                    int v = Math.round(top * (1 - wy) + bottom * wy);
                    px |= Math.max(0, Math.min(255, v)) << shift;
                }
                out[y * outW + x] = px;
            }
        }
        return out;
    }

    private static void axis(int in, int out, int[] i0, int[] i1, float[] f) {
        double s = (double) in / out;
        for (int i = 0; i < out; i++) {
            double src = (i + 0.5) * s - 0.5;
            int lo = (int) Math.floor(src);
            double frac = src - lo;
            if (lo < 0) {
                lo = 0;
                frac = 0;
            }
            if (lo >= in - 1) {
                lo = in - 1;
                frac = 0;
            }
            i0[i] = lo;
            i1[i] = Math.min(lo + 1, in - 1);
            f[i] = (float) frac;
        }
    }

    /** Nearest-neighbour mask resize sampling pixel centres: src = ((2 i + 1) * n_in) / (2 n_out). */
    public static byte[] resizeMaskNearest(byte[] mask, int width, int height, int outW, int outH) {
        int[] cols = new int[outW];
        for (int x = 0; x < outW; x++) cols[x] = (int) (((2L * x + 1) * width) / (2L * outW));
        byte[] out = new byte[outW * outH];
        for (int y = 0; y < outH; y++) {
            int row = (int) (((2L * y + 1) * height) / (2L * outH)) * width;
            for (int x = 0; x < outW; x++) out[y * outW + x] = mask[row + cols[x]];
        }
        return out;
    }

    /**
     * Class scores (h x w x c floats, channels last, as the model gives them) to outH x outW x c,
     * bilinear at pixel centres (half-pixel, as F.interpolate(align_corners=False)): columns first,
     * then rows; weights computed in double, used in float. The same floats, to the bit, as
     * facesegtool.imaging.upsample_scores, so the argmax after it is the same mask.
     */
    public static float[] upsampleScores(float[] scores, int h, int w, int c, int outH, int outW) {
        return upsampleScores(scores, h, w, c, outH, outW, 0, outH);
    }

    /** Output rows [row0, row1) of {@link #upsampleScores(float[], int, int, int, int, int)}: the same floats. */
    public static float[] upsampleScores(float[] scores, int h, int w, int c, int outH, int outW, int row0, int row1) {
        int[] x0 = new int[outW], x1 = new int[outW], y0 = new int[outH], y1 = new int[outH];
        float[] wx0 = new float[outW], wx1 = new float[outW], wy0 = new float[outH], wy1 = new float[outH];
        scoreAxis(w, outW, x0, x1, wx0, wx1);
        scoreAxis(h, outH, y0, y1, wy0, wy1);
        float[] across = new float[h * outW * c];
        for (int y = 0; y < h; y++) {
            int row = y * w * c, dst = y * outW * c;
            for (int x = 0; x < outW; x++) {
                int a = row + x0[x] * c, b = row + x1[x] * c, o = dst + x * c;
                for (int k = 0; k < c; k++) across[o + k] = wx0[x] * scores[a + k] + wx1[x] * scores[b + k];
            }
        }
        float[] out = new float[(row1 - row0) * outW * c];
        int line = outW * c;
        for (int y = row0; y < row1; y++) {
            int a = y0[y] * line, b = y1[y] * line, o = (y - row0) * line;
            float p = wy0[y], q = wy1[y];
            for (int i = 0; i < line; i++) out[o + i] = p * across[a + i] + q * across[b + i];
        }
        return out;
    }

    /** Lower/upper source index and their float weights per output index; the edge value whole past the end centres. */
    private static void scoreAxis(int in, int out, int[] lo, int[] hi, float[] w0, float[] w1) {
        double s = (double) in / out;
        for (int i = 0; i < out; i++) {
            double src = (i + 0.5) * s - 0.5;
            int l = (int) Math.floor(src);
            double frac = src - l;
            if (l < 0 || l >= in - 1) {
                l = Math.max(0, Math.min(l, in - 1));
                frac = 0;
            }
            lo[i] = l;
            hi[i] = Math.min(l + 1, in - 1);
            w0[i] = (float) (1.0 - frac);
            w1[i] = (float) frac;
        }
    }
}
