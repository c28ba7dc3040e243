package com.facesegtool.demo;

import android.content.Context;
import android.content.res.AssetFileDescriptor;
import android.os.SystemClock;
import android.util.Log;

import com.facesegtool.core.ModelIO;
import com.facesegtool.core.Sidecar;

import org.tensorflow.lite.Interpreter;
import org.tensorflow.lite.gpu.CompatibilityList;
import org.tensorflow.lite.gpu.GpuDelegate;

import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * The exported model from the app's assets (model.tflite + its sidecar model.json), on the GPU
 * delegate or the CPU (XNNPACK). Everything about the model's input and output comes from the
 * sidecar, so a new export drops in. Not thread-safe: use it from one background thread.
 *
 * <p>A run returns the class scores at the model's output size (which may be 1/4 or 1/8 of the
 * input) in a buffer reused from frame to frame; the caller smooths / upsamples them and takes the
 * argmax once, and the effects read their soft alphas from them (Effects.layers: logits or
 * probabilities, as the sidecar's output kind says).
 */
final class Segmenter implements AutoCloseable {
    static final String MODEL_ASSET = "model.tflite";
    static final String SIDECAR_ASSET = "model.json";
    private static final String TAG = "Segmenter";

    enum Accelerator { GPU, CPU }

    /**
     * One inference: the class scores at the model's output size (row major height x width x model
     * classes, dequantized; the same array every run: copy it to keep it) and how long the
     * interpreter took.
     */
    static final class Result {
        final float[] scores;
        final int width, height;
        final double inferenceMs;

        Result(float[] scores, int width, int height, double inferenceMs) {
            this.scores = scores;
            this.width = width;
            this.height = height;
            this.inferenceMs = inferenceMs;
        }
    }

    final Sidecar sidecar;
    /** What actually runs (the GPU may be refused by the device and fall back to the CPU). */
    final String acceleratorLabel;
    private final Interpreter interpreter;
    private GpuDelegate gpu;
    private final ByteBuffer input, output;
    private float[] scores; // reused by every run
    /**
     * Set once loading the GPU delegate's native library or classes failed: a second attempt would
     * throw NoClassDefFoundError (the class failed to initialise), so the GPU is not tried again.
     */
    private static volatile String gpuBroken;

    Segmenter(Context context, Accelerator wanted, int cpuThreads) throws IOException {
        sidecar = Sidecar.parse(readText(context, SIDECAR_ASSET));
        ModelIO.checkSupported(sidecar); // an int16-I/O export fails here, with its reason, not on a frame
        MappedByteBuffer model = map(context, MODEL_ASSET);
        Interpreter gpuInterpreter = null;
        if (wanted == Accelerator.GPU) {
            gpuInterpreter = tryGpu(model);
        }
        if (gpuInterpreter != null) {
            interpreter = gpuInterpreter;
            acceleratorLabel = "GPU";
        } else {
            Interpreter.Options options = new Interpreter.Options().setNumThreads(cpuThreads).setUseXNNPACK(true);
            interpreter = new Interpreter(model, options);
            acceleratorLabel = wanted == Accelerator.GPU ? "CPU x" + cpuThreads + " (GPU unavailable)" : "CPU x" + cpuThreads;
        }
        int[] shape = interpreter.getInputTensor(0).shape();
        int[] expected = {1, sidecar.inputHeight, sidecar.inputWidth, 3};
        if (sidecar.inputLayout.equals("NHWC") && !Arrays.equals(shape, expected)) {
            close();
            throw new IOException("model input " + Arrays.toString(shape) + " does not match its sidecar "
                    + Arrays.toString(expected) + ": install the .tflite and .json of the same export");
        }
        int[] outShape = interpreter.getOutputTensor(0).shape();
        int[] outExpected = {1, sidecar.outputHeight, sidecar.outputWidth, sidecar.numClasses};
        if (sidecar.outputLayout.equals("NHWC") && !Arrays.equals(outShape, outExpected)) {
            close();
            throw new IOException("model output " + Arrays.toString(outShape) + " does not match its sidecar "
                    + Arrays.toString(outExpected) + ": install the .tflite and .json of the same export");
        }
        input = ModelIO.allocateInput(sidecar);
        output = ModelIO.allocateOutput(sidecar);
    }

    private Interpreter tryGpu(MappedByteBuffer model) {
        if (gpuBroken != null) return null;
        try (CompatibilityList compatibility = new CompatibilityList()) {
            if (!compatibility.isDelegateSupportedOnThisDevice()) return null;
            gpu = new GpuDelegate(compatibility.getBestOptionsForThisDevice());
            return new Interpreter(model, new Interpreter.Options().addDelegate(gpu));
        } catch (RuntimeException | LinkageError e) {
            // Some ops or drivers are refused at delegate time: fall back to the CPU rather than fail.
            // LinkageError: UnsatisfiedLinkError the first time, NoClassDefFoundError on any retry.
            Log.w(TAG, "GPU delegate unavailable, using the CPU", e);
            if (e instanceof LinkageError) gpuBroken = e.toString();
            if (gpu != null) {
                gpu.close();
                gpu = null;
            }
            return null;
        }
    }

    /** Runs the model on an ARGB image already at the model's input size. */
    Result run(int[] argbAtInputSize) {
        ModelIO.fillInput(argbAtInputSize, sidecar, input);
        output.rewind();
        long t0 = SystemClock.elapsedRealtimeNanos();
        interpreter.run(input, output);
        double ms = (SystemClock.elapsedRealtimeNanos() - t0) / 1e6;
        output.rewind();
        scores = ModelIO.scores(output, sidecar, scores);
        return new Result(scores, sidecar.outputWidth, sidecar.outputHeight, ms);
    }

    @Override
    public void close() {
        interpreter.close();
        if (gpu != null) gpu.close();
    }

    static boolean modelInstalled(Context context) {
        try {
            String[] names = context.getAssets().list("");
            return names != null && Arrays.asList(names).contains(MODEL_ASSET) && Arrays.asList(names).contains(SIDECAR_ASSET);
        } catch (IOException e) {
            return false;
        }
    }

    private static MappedByteBuffer map(Context context, String asset) throws IOException {
        try (AssetFileDescriptor fd = context.getAssets().openFd(asset);
             FileInputStream in = new FileInputStream(fd.getFileDescriptor())) {
            return in.getChannel().map(FileChannel.MapMode.READ_ONLY, fd.getStartOffset(), fd.getDeclaredLength());
        }
    }

    private static String readText(Context context, String asset) throws IOException {
        try (InputStream in = context.getAssets().open(asset)) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buf = new byte[8192];
            int n;
            while ((n = in.read(buf)) > 0) out.write(buf, 0, n);
            return new String(out.toByteArray(), StandardCharsets.UTF_8);
        }
    }
}
