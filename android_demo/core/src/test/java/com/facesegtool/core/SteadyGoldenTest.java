package com.facesegtool.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Map;
import org.junit.BeforeClass;
import org.junit.Test;

/**
 * The whole-head merge, the dequantized scores and the temporal smoothing against the Python side's
 * golden files (facesegtool/head.py, tflite_runner.dequantize, video.ScoreSmoother): the same masks
 * and the same float bits.
 */
public class SteadyGoldenTest {
    static GoldenFiles g;
    static Map<String, Object> cases;

    @BeforeClass
    @SuppressWarnings("unchecked")
    public static void load() throws Exception {
        g = new GoldenFiles();
        cases = (Map<String, Object>) GoldenFiles.json(g.text("cases.json"));
    }

    static float[] floats(String name) throws Exception {
        ByteBuffer b = g.tensor(name, ByteOrder.LITTLE_ENDIAN);
        float[] out = new float[b.capacity() / 4];
        for (int i = 0; i < out.length; i++) out[i] = b.getFloat(4 * i);
        return out;
    }

    static int size() {
        return ((Number) ((List<?>) cases.get("size")).get(0)).intValue();
    }

    @Test
    public void headMergeMatchesExactly() throws Exception {
        Map<?, ?> c = (Map<?, ?>) cases.get("head");
        int n = GoldenTest.sidecar("float32").numClasses, s = size();
        float[] merged = HeadMerge.merge(floats((String) c.get("detail")), floats((String) c.get("wide")), s, n);
        byte[] ours = HeadMerge.argmax(merged, 4 * s * s, n);
        GoldenFiles.Pnm want = g.pnm((String) c.get("mask"));
        assertEquals(2 * s, want.width);
        assertArrayEquals("whole-head mask", want.gray, ours);
    }

    @Test
    public void mergeKeepsTheDetailInsideAndTheWidePassOutside() throws Exception {
        // The crop's centre is the detail's argmax; a corner of the wide box is the wide pass's.
        Map<?, ?> c = (Map<?, ?>) cases.get("head");
        int n = GoldenTest.sidecar("float32").numClasses, s = size();
        float[] detail = floats((String) c.get("detail")), wide = floats((String) c.get("wide"));
        byte[] merged = HeadMerge.argmax(HeadMerge.merge(detail, wide, s, n), 4 * s * s, n);
        byte[] d = HeadMerge.argmax(detail, s * s, n);
        byte[] up = HeadMerge.argmax(HeadMerge.upsample2(wide, s, s, n), 4 * s * s, n);
        int[] o = HeadMerge.window(s);
        int centre = (o[1] + s / 2) * 2 * s + o[0] + s / 2;
        assertEquals(d[(s / 2) * s + s / 2], merged[centre]);
        assertEquals(up[0], merged[0]);
        assertArrayEquals(new int[] {s / 2, s / 4}, new int[] {o[0], o[1]});
    }

    @Test
    public void int8ScoresAreDequantizedBitForBit() throws Exception {
        Sidecar sc = GoldenTest.sidecar("int8");
        ByteBuffer logits = g.tensor((String) GoldenTest.variant("int8").get("logits"), ByteOrder.nativeOrder());
        assertArrayEquals(floats((String) cases.get("scores_int8")), ModelIO.scores(logits, sc), 0f);
    }

    @Test
    public void smoothingMatchesFrameByFrame() throws Exception {
        Map<?, ?> c = (Map<?, ?>) cases.get("smooth");
        List<?> shape = (List<?>) c.get("shape");
        int t = ((Number) shape.get(0)).intValue(), h = ((Number) shape.get(1)).intValue();
        int w = ((Number) shape.get(2)).intValue(), n = ((Number) shape.get(3)).intValue();
        float[] frames = floats((String) c.get("frames"));
        byte[] want = g.pnm((String) c.get("masks")).gray;
        List<?> restarts = (List<?>) c.get("restarts");
        ScoreSmoother smoother =
                new ScoreSmoother(((Number) c.get("strength")).doubleValue(), ((Number) c.get("cut")).doubleValue());
        float[] state = null;
        int smoothedDiffers = 0;
        for (int f = 0; f < t; f++) {
            float[] frame = new float[h * w * n];
            System.arraycopy(frames, f * h * w * n, frame, 0, frame.length);
            state = smoother.update(frame, h, w, n, false);
            byte[] mask = HeadMerge.argmax(state, h * w, n), raw = HeadMerge.argmax(frame, h * w, n);
            byte[] expected = new byte[h * w];
            System.arraycopy(want, f * h * w, expected, 0, h * w);
            assertArrayEquals("smoothed mask, frame " + f, expected, mask);
            assertEquals("restarts after frame " + f, ((Number) restarts.get(f)).intValue(), smoother.restarts);
            for (int i = 0; i < h * w; i++) if (mask[i] != raw[i]) smoothedDiffers++;
        }
        assertArrayEquals("last smoothed scores", floats((String) c.get("last")), state, 0f);
        assertTrue("smoothing changed no pixel: the goldens do not exercise it", smoothedDiffers > 0);
    }
}
