package com.facesegtool.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.util.Arrays;
import java.util.List;
import org.junit.Test;

/**
 * A user's own model: 19 CelebAMask-HQ labels in output order, a mapping onto the app's 11 classes,
 * a 1/4-resolution output. The app shows the mapped mask; Effects finds classes by target name.
 */
public class MappingTest {
    static final List<String> CELEBAMASK19 = Arrays.asList("background", "skin", "l_brow", "r_brow", "l_eye",
            "r_eye", "eye_g", "l_ear", "r_ear", "ear_r", "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth",
            "hair", "hat");
    static final List<String> TARGET = Arrays.asList("background", "lips", "eyes", "nose", "hair", "eyebrows",
            "teeth", "face", "ears", "glasses", "beard");

    static String quoted(List<String> names) {
        StringBuilder b = new StringBuilder("[");
        for (String n : names) b.append(b.length() > 1 ? "," : "").append('"').append(n).append('"');
        return b.append(']').toString();
    }

    static String sidecar19(String mapping, String kind) {
        return "{\"format\":\"facesegtool-sidecar\",\"version\":1,\"model\":\"celebamask19\",\"variant\":\"fp32\","
                + "\"tflite\":\"celebamask19.tflite\",\"classes\":" + quoted(CELEBAMASK19)
                + ",\"target_classes\":" + quoted(TARGET) + (mapping == null ? "" : ",\"mapping\":" + mapping)
                + ",\"input\":{\"shape\":[1,512,512,3],\"layout\":\"NHWC\",\"channel_order\":\"RGB\","
                + "\"dtype\":\"float32\",\"mean\":[0.485,0.456,0.406],\"std\":[0.229,0.224,0.225],\"scale\":255.0,"
                + "\"normalization_baked\":false,\"quantization\":null},"
                + "\"output\":{\"shape\":[1,128,128,19],\"layout\":\"NHWC\",\"dtype\":\"float32\","
                + "\"quantization\":null,\"kind\":\"" + kind + "\"}}";
    }

    static final String MAPPING = "{\"background\":\"background\",\"skin\":\"face\",\"l_brow\":\"eyebrows\","
            + "\"r_brow\":\"eyebrows\",\"l_eye\":\"eyes\",\"r_eye\":\"eyes\",\"eye_g\":\"glasses\","
            + "\"l_ear\":\"ears\",\"r_ear\":\"ears\",\"ear_r\":\"ignore\",\"nose\":\"nose\",\"mouth\":\"teeth\","
            + "\"u_lip\":\"lips\",\"l_lip\":\"lips\",\"neck\":\"face\",\"neck_l\":\"ignore\","
            + "\"cloth\":\"ignore\",\"hair\":\"hair\",\"hat\":\"ignore\"}";

    @Test
    public void nineteenClassesMapOntoTheElevenTargets() {
        Sidecar sc = Sidecar.parse(sidecar19(MAPPING, "logits"));
        assertEquals(19, sc.numClasses);
        assertEquals(TARGET, sc.targetClasses);
        assertFalse(sc.isIdentityMapping());
        assertEquals(128, sc.outputWidth);
        assertEquals(512, sc.inputWidth);
        String[][] expect = {{"background", "background"}, {"skin", "face"}, {"neck", "face"},
            {"l_brow", "eyebrows"}, {"r_brow", "eyebrows"}, {"l_eye", "eyes"}, {"r_eye", "eyes"},
            {"eye_g", "glasses"}, {"l_ear", "ears"}, {"r_ear", "ears"}, {"nose", "nose"}, {"mouth", "teeth"},
            {"u_lip", "lips"}, {"l_lip", "lips"}, {"hair", "hair"},
            {"ear_r", "background"}, {"neck_l", "background"}, {"cloth", "background"}, {"hat", "background"}};
        for (String[] e : expect) {
            assertEquals(e[0], TARGET.indexOf(e[1]), sc.targetOf(CELEBAMASK19.indexOf(e[0])));
        }
        // Effects look classes up by target name.
        assertEquals(4, sc.classIndex("hair"));
        assertEquals(1, sc.classIndex("lips"));
        assertEquals(-1, sc.classIndex("u_lip"));
        byte[] mask = {0, 1, 12, 13, 17, 18, 6, 11};
        assertArrayEquals(new byte[] {0, 7, 1, 1, 4, 0, 9, 6}, sc.toTargetMask(mask));
        assertEquals(TARGET.size(), sc.palette.length);
    }

    @Test
    public void absentMappingIsIdentityByName() {
        Sidecar sc = Sidecar.parse(sidecar19(null, "probabilities"));
        assertEquals("probabilities", sc.outputKind);
        assertEquals(TARGET.indexOf("hair"), sc.targetOf(CELEBAMASK19.indexOf("hair")));
        assertEquals(TARGET.indexOf("nose"), sc.targetOf(CELEBAMASK19.indexOf("nose")));
        assertEquals(0, sc.targetOf(CELEBAMASK19.indexOf("skin"))); // no target of that name: background
    }

    @Test
    public void ourOwnSidecarIsTheIdentity() {
        Sidecar sc = Sidecar.parse(CoreTest.sidecarJson("null", "float32"));
        assertTrue(sc.isIdentityMapping());
        assertEquals(sc.classes, sc.targetClasses);
        assertEquals("logits", sc.outputKind);
    }

    @Test
    public void badMappingsAreRefusedByName() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Sidecar.parse(sidecar19(MAPPING.replace("\"skin\":\"face\"", "\"skin\":\"cheeks\""), "logits")));
        assertTrue(e.getMessage(), e.getMessage().contains("cheeks"));
        // A label left out of the mapping is refused by name (as facesegtool.contract; other keys are ignored).
        e = assertThrows(IllegalArgumentException.class,
                () -> Sidecar.parse(sidecar19(MAPPING.replace("\"hat\":\"ignore\"", "\"tail\":\"hair\""), "logits")));
        assertTrue(e.getMessage(), e.getMessage().contains("\"hat\""));
        assertThrows(IllegalArgumentException.class, () -> Sidecar.parse(sidecar19(MAPPING, "softmax")));
    }

    @Test
    public void int16IoIsRefusedAtLoadNotOnTheFirstFrame() {
        String json = CoreTest.sidecarJson("null", "float32").replace("\"dtype\":\"float32\",\"mean\"",
                "\"dtype\":\"int16\",\"mean\"");
        Sidecar sc = Sidecar.parse(json);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelIO.checkSupported(sc));
        assertTrue(e.getMessage(), e.getMessage().contains("int16"));
        ModelIO.checkSupported(Sidecar.parse(CoreTest.sidecarJson("null", "int8")));
    }

    @Test
    public void scoresReuseTheirBuffer() {
        Sidecar sc = Sidecar.parse(CoreTest.sidecarJson("null", "float32"));
        java.nio.ByteBuffer out = ModelIO.allocateOutput(sc);
        for (int i = 0; i < 12; i++) out.putFloat(4 * i, i);
        float[] buf = new float[12];
        float[] got = ModelIO.scores(out, sc, buf);
        assertTrue(got == buf);
        assertArrayEquals(ModelIO.scores(out, sc), got, 0f);
    }
}
