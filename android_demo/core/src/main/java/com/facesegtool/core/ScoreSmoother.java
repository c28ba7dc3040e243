package com.facesegtool.core;

/**
 * Temporal smoothing of class scores for steady video, a port of facesegtool.video.ScoreSmoother
 * that gives the same floats (golden files prove it): an exponential moving average
 * s = a x + (1 - a) s with a = 1 - strength, in float32 in that order. It restarts from the new
 * scores when asked (the crop jumped), when the size changes, or on a scene cut: the argmax of the
 * new and the smoothed scores differ on more than {@code cut} of the pixels. Not thread-safe.
 */
public final class ScoreSmoother {
    /** Weight of the past; at 25 fps 0.6 settles in about 0.2 s. */
    public static final double DEFAULT_STRENGTH = 0.6;
    /** Share of pixels changing class at once that counts as a scene cut. */
    public static final double CUT_SHARE = 0.5;

    private final double strength, cut;
    private final float a, b;
    private float[] state;
    private int pixels, classes;
    /** Times it started afresh (the first frame included). */
    public int restarts;

    public ScoreSmoother(double strength, double cut) {
        if (!(strength >= 0.0 && strength < 1.0)) {
            throw new IllegalArgumentException("smoothing strength " + strength + " out of range [0, 1)");
        }
        this.strength = strength;
        this.cut = cut;
        this.a = (float) (1.0 - strength);
        this.b = 1f - a;
    }

    public ScoreSmoother() {
        this(DEFAULT_STRENGTH, CUT_SHARE);
    }

    public void reset() {
        state = null;
    }

    private boolean isCut(float[] scores, int height, int width) {
        byte[] now = HeadMerge.argmax(scores, pixels, classes), was = HeadMerge.argmax(state, pixels, classes);
        int changed = 0;
        for (int i = 0; i < pixels; i++) if (now[i] != was[i]) changed++;
        return changed > cut * height * width;
    }

    /** Smooths one frame's height x width x classes scores; returns the smoothed scores (owned by this object). */
    public float[] update(float[] scores, int height, int width, int classes, boolean reset) {
        if (reset || state == null || pixels != height * width || this.classes != classes) {
            restart(scores, height, width, classes);
        } else if (isCut(scores, height, width)) {
            restart(scores, height, width, classes);
        } else if (strength > 0) {
            for (int i = 0; i < state.length; i++) state[i] = a * scores[i] + b * state[i];
        } else {
            System.arraycopy(scores, 0, state, 0, state.length);
        }
        return state;
    }

    private void restart(float[] scores, int height, int width, int classes) {
        pixels = height * width;
        this.classes = classes;
        state = scores.clone();
        restarts++;
    }
}
