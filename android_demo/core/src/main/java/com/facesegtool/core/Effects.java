package com.facesegtool.core;

import java.util.List;

/**
 * Beauty effects from a class mask, or from soft alphas that fade them across a class's edge; a port
 * of facesegtool/predict/effects.py that gives the same pixels (golden files prove it). All integer
 * arithmetic:
 *
 * <ul>
 *   <li>strength a = floor(alpha * 256 + 0.5); an effect blends each pixel with weight w = a * p,
 *       p its alpha 0..256 for the effect's class (hard mask: 256 on the class, 0 elsewhere):
 *       (src * (65536 - w) + dst * w + 32768) >> 16
 *   <li>soft alpha p from the class scores at the picture's pixels: class weights e_j = EXP_TABLE[
 *       min(rint(32 * (max - s_j)), 378)] for logits (float difference, ties to even), clamp(rint(
 *       65536 * s_j), 0, 65536) for probabilities; p = clamp((512 * n + d / 2) / d - 128, 0, 256),
 *       d = sum of all e_j, n = the sum over the model classes shown as the effect's class: the
 *       class's probability ramped from 0 at 1/4 to 256 at 3/4 (faint doubt tints nothing, the
 *       class's inside is full strength, its edge fades). EXP_TABLE[k] = floor(65536 *
 *       exp(-k / 32) + 0.5): every entry lies far from a rounding boundary, so StrictMath.exp and
 *       Python's math.exp give the same table (the goldens check it)
 *   <li>effects apply in order smooth, hair, lips, brows, each on the result of the one before
 *   <li>luma Y = (77 R + 150 G + 29 B + 128) >> 8
 *   <li>hair, lips: dst = clamp(colour + Y - Y(colour)) (recolour keeping the shading)
 *   <li>brows: dst = (src * colour + 127) / 255 (multiply: darkens)
 *   <li>smooth: each face pixel becomes the rounded mean (sum + n/2) / n of the face pixels in its
 *       (2r+1)^2 box, so eyes, brows, lips and hair never bleed into the skin.
 * </ul>
 */
public final class Effects {
    private Effects() {}

    /** The classes {@link #softAlphas} gives an alpha for (by target class name). */
    public static final List<String> EFFECT_CLASSES = java.util.Arrays.asList("face", "hair", "lips", "eyebrows");
    static final int SOFT_ONE = 1 << 16, SOFT_STEP = 32;
    /** floor(65536 * exp(-k / 32) + 0.5) for k = 0.. up to its first 0 (k = 378). */
    static final int[] EXP_TABLE = expTable();
    /** Output rows {@link #layers} upsamples at a time (as predict's BAND_ROWS). */
    public static final int BAND_ROWS = 256;

    private static int[] expTable() {
        int[] t = new int[1024];
        int k = 0;
        do {
            t[k] = (int) Math.floor(SOFT_ONE * StrictMath.exp(-k / (double) SOFT_STEP) + 0.5);
        } while (t[k++] > 0);
        return java.util.Arrays.copyOf(t, k);
    }

    /** Which effects to apply; colours 0xRRGGBB, null = off; smooth = box radius in pixels, 0 = off. */
    public static final class Params {
        public Integer hair, lips, brows;
        public int smooth;

        public Params(Integer hair, Integer lips, Integer brows, int smooth) {
            this.hair = hair;
            this.lips = lips;
            this.brows = brows;
            this.smooth = smooth;
        }

        /** The defaults of `facesegtool predict` (effects.DEFAULT_EFFECTS). */
        public static Params defaults() {
            return new Params(0x8040C0, 0xC02040, 0x503830, 3);
        }
    }

    /** alpha in [0, 1] -> integer weight 0..256 (same rounding as effects.strength). */
    public static int strength(double alpha) {
        if (!(alpha >= 0.0 && alpha <= 1.0)) throw new IllegalArgumentException("alpha " + alpha + " out of range [0, 1]");
        return (int) Math.floor(alpha * 256 + 0.5);
    }

    /** "#RRGGBB" -> 0xRRGGBB. */
    public static int parseColour(String text) {
        String t = text.trim();
        if (t.startsWith("#")) t = t.substring(1);
        if (t.length() != 6) throw new IllegalArgumentException("bad colour " + text + ": use #RRGGBB");
        return Integer.parseInt(t, 16);
    }

    static int blendChannel(int s, int d, int a) {
        return (s * (256 - a) + d * a + 128) >> 8;
    }

    /** Blends the RGB of src towards dst (0xRRGGBB) with weight a/256; keeps src's alpha. */
    static int blendPixel(int src, int dst, int a) {
        int r = blendChannel((src >> 16) & 255, (dst >> 16) & 255, a);
        int g = blendChannel((src >> 8) & 255, (dst >> 8) & 255, a);
        int b = blendChannel(src & 255, dst & 255, a);
        return (src & 0xFF000000) | (r << 16) | (g << 8) | b;
    }

    /** Blends the RGB of src towards dst (0xRRGGBB) with weight w/65536 (w = strength * alpha); keeps src's alpha. */
    static int blendWeighted(int src, int dst, int w) {
        int v = 0;
        for (int s = 16; s >= 0; s -= 8) {
            v |= ((((src >> s) & 255) * (SOFT_ONE - w) + ((dst >> s) & 255) * w + SOFT_ONE / 2) >> 16) << s;
        }
        return (src & 0xFF000000) | v;
    }

    /**
     * Soft alphas 0..256 of the effect classes (EFFECT_CLASSES) from {@code pixels} x numClasses
     * scores (row major, channels last, at the picture's pixels), indexed by target class
     * ({@code sc.classIndex}); null for the classes that are no effect's. The sidecar says whether
     * the scores are logits or probabilities and which target class each model class is shown as.
     */
    public static short[][] softAlphas(float[] scores, int pixels, Sidecar sc) {
        return softAlphas(scores, pixels, sc, sc.outputKind.equals("probabilities"));
    }

    /** As {@link #softAlphas(float[], int, Sidecar)}, with the scores' kind given (the goldens test both). */
    public static short[][] softAlphas(float[] scores, int pixels, Sidecar sc, boolean probabilities) {
        short[][] out = new short[sc.targetClasses.size()][];
        softAlphasInto(scores, pixels, sc, probabilities, out, 0, pixels);
        return out;
    }

    /** Writes the alphas of {@code pixels} pixels of scores into out[class][offset..], allocating total-long arrays. */
    private static void softAlphasInto(float[] scores, int pixels, Sidecar sc, boolean probabilities, short[][] out,
                                       int offset, int total) {
        int c = sc.numClasses;
        int[] wanted = new int[c]; // model class -> target class if an effect's, else -1
        for (int j = 0; j < c; j++) {
            int t = sc.targetOf(j);
            wanted[j] = EFFECT_CLASSES.contains(sc.targetClasses.get(t)) ? t : -1;
        }
        for (String name : EFFECT_CLASSES) {
            int t = sc.classIndex(name);
            if (t >= 0 && out[t] == null) out[t] = new short[total];
        }
        long[] num = new long[out.length];
        int last = EXP_TABLE.length - 1;
        for (int i = 0; i < pixels; i++) {
            int o = i * c;
            float max = scores[o];
            for (int j = 1; j < c; j++) if (scores[o + j] > max) max = scores[o + j];
            java.util.Arrays.fill(num, 0);
            long den = 0;
            for (int j = 0; j < c; j++) {
                int e;
                if (probabilities) {
                    double r = Math.rint(scores[o + j] * (float) SOFT_ONE);
                    e = r <= 0 ? 0 : (r >= SOFT_ONE ? SOFT_ONE : (int) r);
                } else {
                    double k = Math.rint((max - scores[o + j]) * (float) SOFT_STEP);
                    e = EXP_TABLE[k >= last ? last : (int) k];
                }
                den += e;
                if (wanted[j] >= 0) num[wanted[j]] += e;
            }
            for (int t = 0; t < out.length; t++) {
                if (out[t] == null) continue;
                long ramp = den > 0 ? (512 * num[t] + den / 2) / den - 128 : 0;
                out[t][offset + i] = (short) Math.max(0, Math.min(256, ramp));
            }
        }
    }

    /** What the effects read at a picture's size: the class mask (target classes) and the soft alphas. */
    public static final class Layers {
        public final byte[] mask;
        public final short[][] alphas;

        Layers(byte[] mask, short[][] alphas) {
            this.mask = mask;
            this.alphas = alphas;
        }
    }

    /**
     * h x w x numClasses model scores -> the mask and soft alphas at outH x outW, as `facesegtool
     * predict` makes them: scores upsampled bilinearly ({@link ImageOps#upsampleScores}), then the
     * argmax and the alphas; bandRows output rows at a time, so the full-size scores never sit in
     * memory whole (any band size gives the same result).
     */
    public static Layers layers(float[] scores, int h, int w, Sidecar sc, int outH, int outW, int bandRows) {
        return layers(scores, h, w, sc, outH, outW, bandRows, true);
    }

    /** The mask of {@link #layers} alone (the overlay needs no alphas): the same bytes. */
    public static byte[] mask(float[] scores, int h, int w, Sidecar sc, int outH, int outW, int bandRows) {
        return layers(scores, h, w, sc, outH, outW, bandRows, false).mask;
    }

    private static Layers layers(float[] scores, int h, int w, Sidecar sc, int outH, int outW, int bandRows,
                                 boolean withAlphas) {
        int c = sc.numClasses;
        byte[] mask = new byte[outH * outW];
        short[][] alphas = withAlphas ? new short[sc.targetClasses.size()][] : null;
        boolean probabilities = sc.outputKind.equals("probabilities");
        for (int r0 = 0; r0 < outH; r0 += bandRows) {
            int r1 = Math.min(outH, r0 + bandRows), n = (r1 - r0) * outW;
            float[] band = ImageOps.upsampleScores(scores, h, w, c, outH, outW, r0, r1);
            System.arraycopy(sc.toTargetMask(HeadMerge.argmax(band, n, c)), 0, mask, r0 * outW, n);
            if (withAlphas) softAlphasInto(band, n, sc, probabilities, alphas, r0 * outW, outH * outW);
        }
        return new Layers(mask, alphas);
    }

    static int luma(int rgb) {
        return (77 * ((rgb >> 16) & 255) + 150 * ((rgb >> 8) & 255) + 29 * (rgb & 255) + 128) >> 8;
    }

    static int clamp(int v) {
        return v < 0 ? 0 : (v > 255 ? 255 : v);
    }

    static int recolour(int px, int colour) {
        int shift = luma(px) - luma(colour);
        return (clamp(((colour >> 16) & 255) + shift) << 16) | (clamp(((colour >> 8) & 255) + shift) << 8)
                | clamp((colour & 255) + shift);
    }

    static int darken(int px, int colour) {
        int r = (((px >> 16) & 255) * ((colour >> 16) & 255) + 127) / 255;
        int g = (((px >> 8) & 255) * ((colour >> 8) & 255) + 127) / 255;
        int b = ((px & 255) * (colour & 255) + 127) / 255;
        return (r << 16) | (g << 8) | b;
    }

    /**
     * Copy of the image where each pixel of class {@code cls} is the rounded mean of the pixels of
     * that class in its (2r+1)^2 box (clipped at the border); summed-area tables over the region's
     * bounding box, so the cost does not grow with r.
     */
    public static int[] smoothRegion(int[] argb, int width, int height, byte[] mask, int cls, int radius) {
        int[] out = argb.clone();
        if (radius <= 0) return out;
        int minX = width, minY = height, maxX = -1, maxY = -1;
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) {
                if ((mask[y * width + x] & 255) == cls) {
                    if (x < minX) minX = x;
                    if (x > maxX) maxX = x;
                    if (y < minY) minY = y;
                    if (y > maxY) maxY = y;
                }
            }
        }
        if (maxX < 0) return out;
        int x0 = Math.max(0, minX - radius), x1 = Math.min(width, maxX + radius + 1);
        int y0 = Math.max(0, minY - radius), y1 = Math.min(height, maxY + radius + 1);
        int w = x1 - x0, h = y1 - y0, stride = w + 1;
        // Four tables (R, G, B sums and the count), each (h+1) x (w+1) with a zero first row/column.
        long[] sat = new long[4 * (h + 1) * stride];
        int plane = (h + 1) * stride;
        for (int y = 0; y < h; y++) {
            long sr = 0, sg = 0, sb = 0, sn = 0;
            for (int x = 0; x < w; x++) {
                int i = (y + y0) * width + (x + x0);
                if ((mask[i] & 255) == cls) {
                    int p = argb[i];
                    sr += (p >> 16) & 255;
                    sg += (p >> 8) & 255;
                    sb += p & 255;
                    sn += 1;
                }
                int at = (y + 1) * stride + (x + 1), above = y * stride + (x + 1);
                sat[at] = sat[above] + sr;
                sat[plane + at] = sat[plane + above] + sg;
                sat[2 * plane + at] = sat[2 * plane + above] + sb;
                sat[3 * plane + at] = sat[3 * plane + above] + sn;
            }
        }
        for (int y = 0; y < h; y++) {
            int top = Math.max(y - radius, 0), bottom = Math.min(y + radius + 1, h);
            for (int x = 0; x < w; x++) {
                int i = (y + y0) * width + (x + x0);
                if ((mask[i] & 255) != cls) continue;
                int left = Math.max(x - radius, 0), right = Math.min(x + radius + 1, w);
                int br = bottom * stride + right, tr = top * stride + right, bl = bottom * stride + left, tl = top * stride + left;
                long n = sat[3 * plane + br] - sat[3 * plane + tr] - sat[3 * plane + bl] + sat[3 * plane + tl];
                int px = argb[i] & 0xFF000000;
                for (int c = 0; c < 3; c++) {
                    int o = c * plane;
                    long s = sat[o + br] - sat[o + tr] - sat[o + bl] + sat[o + tl];
                    px |= (int) ((s + n / 2) / n) << (16 - 8 * c);
                }
                out[i] = px;
            }
        }
        return out;
    }

    /** The image with the effects blended in at strength alpha; classes are found by name. */
    public static int[] apply(int[] argb, int width, int height, byte[] mask, List<String> classes, Params p, double alpha) {
        return apply(argb, width, height, mask, null, classes, p, alpha);
    }

    /**
     * As above, each effect blended with its class's soft alpha (alphas[class], 0..256, from
     * {@link #softAlphas} or {@link #layers}) instead of the mask's hard 0 / 256, so it fades across
     * the class's edge; alphas null, or null for a class: the mask.
     */
    public static int[] apply(int[] argb, int width, int height, byte[] mask, short[][] alphas, List<String> classes,
                              Params p, double alpha) {
        if (argb.length != width * height || mask.length != argb.length) {
            throw new IllegalArgumentException("image, mask and size disagree");
        }
        int a = strength(alpha);
        int[] out = argb.clone();
        int face = classes.indexOf("face");
        if (p.smooth > 0 && face >= 0) {
            int[] smoothed = smoothRegion(argb, width, height, mask, face, p.smooth);
            short[] soft = classAlpha(alphas, face, out.length);
            for (int i = 0; i < out.length; i++) {
                int w = weight(mask, soft, i, face, a);
                if (w > 0 && (mask[i] & 255) == face) out[i] = blendWeighted(out[i], smoothed[i], w); // face pixels only
            }
        }
        Integer[] colours = {p.hair, p.lips, p.brows};
        String[] names = {"hair", "lips", "eyebrows"};
        for (int e = 0; e < 3; e++) {
            int cls = classes.indexOf(names[e]);
            if (colours[e] == null || cls < 0) continue;
            int colour = colours[e];
            short[] soft = classAlpha(alphas, cls, out.length);
            for (int i = 0; i < out.length; i++) {
                int w = weight(mask, soft, i, cls, a);
                if (w == 0) continue;
                int px = out[i];
                out[i] = blendWeighted(px, e == 2 ? darken(px, colour) : recolour(px, colour), w);
            }
        }
        return out;
    }

    private static short[] classAlpha(short[][] alphas, int cls, int pixels) {
        if (alphas == null || cls >= alphas.length || alphas[cls] == null) return null;
        if (alphas[cls].length != pixels) throw new IllegalArgumentException("soft alpha and image sizes disagree");
        return alphas[cls];
    }

    /** Blend weight 0..65536 of pixel i: strength times its soft alpha, or 256 on the class's pixels. */
    private static int weight(byte[] mask, short[] soft, int i, int cls, int a) {
        if (soft != null) return a * soft[i];
        return (mask[i] & 255) == cls ? a * 256 : 0;
    }
}
