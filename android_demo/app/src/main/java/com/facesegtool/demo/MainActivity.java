package com.facesegtool.demo;

import android.Manifest;
import android.content.pm.PackageManager;
import android.graphics.Bitmap;
import android.graphics.BitmapFactory;
import android.graphics.Matrix;
import android.net.Uri;
import android.os.Bundle;
import android.os.SystemClock;
import android.util.Log;
import android.view.View;
import android.widget.CheckBox;
import android.widget.ImageView;
import android.widget.RadioGroup;
import android.widget.SeekBar;
import android.widget.TextView;

import androidx.activity.ComponentActivity;
import androidx.activity.result.ActivityResultLauncher;
import androidx.activity.result.contract.ActivityResultContracts;
import androidx.camera.core.CameraSelector;
import androidx.camera.core.ImageAnalysis;
import androidx.camera.core.ImageProxy;
import androidx.camera.core.Preview;
import androidx.camera.core.resolutionselector.AspectRatioStrategy;
import androidx.camera.core.resolutionselector.ResolutionSelector;
import androidx.camera.lifecycle.ProcessCameraProvider;
import androidx.camera.view.PreviewView;
import androidx.core.content.ContextCompat;

import com.facesegtool.core.Effects;
import com.facesegtool.core.HeadMerge;
import com.facesegtool.core.ImageOps;
import com.facesegtool.core.Overlay;
import com.facesegtool.core.ScoreSmoother;
import com.facesegtool.core.Sidecar;

import java.io.IOException;
import java.io.InputStream;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * Live face parsing: CameraX frames -> centre square -> model input -> LiteRT -> class mask ->
 * translucent mask layer or beauty effects over the preview; or the same for a gallery photo.
 * All image work happens in the plain-Java core (android_demo/core), tested against the Python
 * side's golden files; this class only wires Android to it. Inference runs on one background
 * thread, never on the UI thread.
 */
public class MainActivity extends ComponentActivity {
    private static final String TAG = "FaceSegDemo";
    /** Effects are drawn at most this many pixels square on the live view (cost grows with area). */
    private static final int LIVE_EFFECT_SIDE = 480;
    private static final int PHOTO_MAX_SIDE = 1280;

    private final ExecutorService worker = Executors.newSingleThreadExecutor();
    private Segmenter segmenter; // used on the worker thread only
    // Live frames: class scores averaged over time (restarts on a scene cut), so edges do not flicker.
    private ScoreSmoother smoother; // worker thread only
    private double smootherStrength = -1; // the strength `smoother` was made with
    private volatile double steady = ScoreSmoother.DEFAULT_STRENGTH; // the Steady slider
    private volatile boolean restartSmoothing = true;

    private PreviewView preview;
    private ImageView overlayView, photoView;
    private TextView stats;
    private CheckBox hair, lips, brows, smooth;

    private volatile boolean effectsMode = false;
    private volatile double alpha = 0.5;
    private volatile boolean frontCamera = true;
    private volatile Segmenter.Accelerator accelerator = Segmenter.Accelerator.GPU;
    private volatile boolean photoMode = false;
    // Effect switches, mirrored from the check boxes so the worker thread never reads views.
    private volatile boolean hairOn = true, lipsOn = true, browsOn = true, smoothOn = true;
    private ProcessCameraProvider cameraProvider;
    private long lastFrameNanos;
    private double fps;
    private Bitmap lastPhoto;

    private final ActivityResultLauncher<String> cameraPermission =
            registerForActivityResult(new ActivityResultContracts.RequestPermission(), granted -> {
                if (granted) startCamera();
                else stats.setText(R.string.need_camera);
            });

    private final ActivityResultLauncher<String> pickPhoto =
            registerForActivityResult(new ActivityResultContracts.GetContent(), this::onPhotoPicked);

    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        setContentView(R.layout.activity_main);
        preview = findViewById(R.id.preview);
        preview.setScaleType(PreviewView.ScaleType.FILL_CENTER);
        overlayView = findViewById(R.id.overlay);
        photoView = findViewById(R.id.photo);
        stats = findViewById(R.id.stats);
        hair = findViewById(R.id.hair);
        lips = findViewById(R.id.lips);
        brows = findViewById(R.id.brows);
        smooth = findViewById(R.id.smooth);

        if (!Segmenter.modelInstalled(this)) {
            stats.setText(R.string.no_model);
            return;
        }
        findViewById(R.id.switch_camera).setOnClickListener(v -> {
            frontCamera = !frontCamera;
            restartSmoothing = true; // another scene
            if (!photoMode) startCamera();
        });
        findViewById(R.id.gallery).setOnClickListener(v -> pickPhoto.launch("image/*"));
        findViewById(R.id.live).setOnClickListener(v -> {
            photoMode = false;
            restartSmoothing = true;
            photoView.setVisibility(View.GONE);
            startCamera();
        });
        ((RadioGroup) findViewById(R.id.mode)).setOnCheckedChangeListener((g, id) -> {
            effectsMode = id == R.id.mode_effects;
            refreshPhoto();
        });
        ((RadioGroup) findViewById(R.id.accelerator)).setOnCheckedChangeListener((g, id) -> {
            accelerator = id == R.id.gpu ? Segmenter.Accelerator.GPU : Segmenter.Accelerator.CPU;
            worker.execute(this::reloadModel);
            refreshPhoto();
        });
        ((SeekBar) findViewById(R.id.strength)).setOnSeekBarChangeListener(new SeekBar.OnSeekBarChangeListener() {
            @Override public void onProgressChanged(SeekBar s, int progress, boolean fromUser) { alpha = progress / 100.0; }
            @Override public void onStartTrackingTouch(SeekBar s) {}
            @Override public void onStopTrackingTouch(SeekBar s) { refreshPhoto(); }
        });
        ((SeekBar) findViewById(R.id.steady)).setOnSeekBarChangeListener(new SeekBar.OnSeekBarChangeListener() {
            @Override public void onProgressChanged(SeekBar s, int progress, boolean fromUser) { steady = progress / 100.0; }
            @Override public void onStartTrackingTouch(SeekBar s) {}
            @Override public void onStopTrackingTouch(SeekBar s) {}
        });
        View.OnClickListener redraw = v -> {
            hairOn = hair.isChecked();
            lipsOn = lips.isChecked();
            browsOn = brows.isChecked();
            smoothOn = smooth.isChecked();
            refreshPhoto();
        };
        for (CheckBox c : new CheckBox[] {hair, lips, brows, smooth}) c.setOnClickListener(redraw);

        worker.execute(this::reloadModel);
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera();
        } else {
            cameraPermission.launch(Manifest.permission.CAMERA);
        }
    }

    /** Worker thread: (re)creates the interpreter on the chosen accelerator. */
    private void reloadModel() {
        if (segmenter != null) segmenter.close();
        segmenter = null;
        try {
            segmenter = new Segmenter(this, accelerator, 4);
            Sidecar sc = segmenter.sidecar;
            String text = String.format("%s %s %dx%d on %s", sc.model, sc.variant, sc.inputWidth, sc.inputHeight,
                    segmenter.acceleratorLabel);
            runOnUiThread(() -> stats.setText(text));
        } catch (IOException | RuntimeException e) {
            Log.e(TAG, "cannot load the model", e);
            runOnUiThread(() -> stats.setText("cannot load the model: " + e.getMessage()));
        }
    }

    private void startCamera() {
        ProcessCameraProvider.getInstance(this).addListener(() -> {
            try {
                cameraProvider = ProcessCameraProvider.getInstance(this).get();
            } catch (Exception e) {
                stats.setText("camera unavailable: " + e.getMessage());
                return;
            }
            // Preview and analysis share one aspect ratio, so the preview's centre square (FILL_CENTER
            // in a square view) is the analysis frame's centre square that the model sees.
            ResolutionSelector selector = new ResolutionSelector.Builder()
                    .setAspectRatioStrategy(AspectRatioStrategy.RATIO_4_3_FALLBACK_AUTO_STRATEGY).build();
            Preview previewUseCase = new Preview.Builder().setResolutionSelector(selector).build();
            previewUseCase.setSurfaceProvider(preview.getSurfaceProvider());
            ImageAnalysis analysis = new ImageAnalysis.Builder()
                    .setResolutionSelector(selector)
                    .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                    .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                    .build();
            analysis.setAnalyzer(worker, this::analyse);
            CameraSelector camera = frontCamera ? CameraSelector.DEFAULT_FRONT_CAMERA : CameraSelector.DEFAULT_BACK_CAMERA;
            cameraProvider.unbindAll();
            try {
                cameraProvider.bindToLifecycle(this, camera, previewUseCase, analysis);
            } catch (IllegalArgumentException e) {
                stats.setText("no " + (frontCamera ? "front" : "back") + " camera");
            }
        }, ContextCompat.getMainExecutor(this));
    }

    /** Worker thread: one camera frame. */
    private void analyse(ImageProxy image) {
        try {
            if (segmenter == null || photoMode) return;
            Bitmap upright = upright(image.toBitmap(), image.getImageInfo().getRotationDegrees(), frontCamera);
            int w = upright.getWidth(), h = upright.getHeight();
            int[] pixels = new int[w * h];
            upright.getPixels(pixels, 0, w, 0, 0, w, h);
            int side = ImageOps.centreSquareSide(w, h);
            int[] square = ImageOps.centreSquare(pixels, w, h);
            Bitmap shown = render(square, side, side, true);
            long now = SystemClock.elapsedRealtimeNanos();
            if (lastFrameNanos != 0) {
                double instant = 1e9 / (now - lastFrameNanos);
                fps = fps == 0 ? instant : 0.9 * fps + 0.1 * instant; // smoothed for reading
            }
            lastFrameNanos = now;
            runOnUiThread(() -> {
                if (photoMode) return;
                overlayView.setImageBitmap(shown);
                stats.setText(statsText(fps));
            });
        } finally {
            image.close();
        }
    }

    private volatile String lastInference = "";

    /**
     * Worker thread: segment an image and draw the result. live: a transparent mask layer for over the
     * preview (mask mode) or an opaque effect picture at most LIVE_EFFECT_SIDE square; photo: the
     * overlay or effects blended into the photo at its own resolution.
     */
    private Bitmap render(int[] argb, int w, int h, boolean live) {
        Sidecar sc = segmenter.sidecar;
        // The camera square is cropped; a photo is squeezed whole (as `facesegtool predict` does without --face-crop).
        int[] input = ImageOps.resizeBilinear(argb, w, h, sc.inputWidth, sc.inputHeight);
        Segmenter.Result r = segmenter.run(input);
        lastInference = String.format("%s  %.1f ms", segmenter.acceleratorLabel, r.inferenceMs);
        int background = sc.classIndex("background");
        byte[] classes = live ? steadyMask(r) : r.mask;
        if (live && !effectsMode) {
            int[] layer = Overlay.layer(classes, sc.palette, background, alpha);
            return Bitmap.createBitmap(layer, r.width, r.height, Bitmap.Config.ARGB_8888);
        }
        int ow = w, oh = h;
        int[] pixels = argb;
        if (live && w > LIVE_EFFECT_SIDE) {
            ow = oh = LIVE_EFFECT_SIDE;
            pixels = ImageOps.resizeBilinear(argb, w, h, ow, oh);
        }
        byte[] mask = ImageOps.resizeMaskNearest(classes, r.width, r.height, ow, oh);
        int[] out;
        if (effectsMode) {
            Effects.Params p = Effects.Params.defaults();
            if (!hairOn) p.hair = null;
            if (!lipsOn) p.lips = null;
            if (!browsOn) p.brows = null;
            // The radius is given at the model's resolution; scale it like predict does.
            p.smooth = smoothOn ? Math.max(1, (int) Math.floor(p.smooth * (double) ow / sc.inputWidth + 0.5)) : 0;
            out = Effects.apply(pixels, ow, oh, mask, sc.classes, p, alpha);
        } else {
            out = Overlay.blend(pixels, mask, sc.palette, background, alpha);
        }
        return Bitmap.createBitmap(out, ow, oh, Bitmap.Config.ARGB_8888);
    }

    /**
     * Worker thread: the live frame's mask from its scores smoothed over time (the same
     * ScoreSmoother as `facesegtool predict` on a video; Steady slider = its strength, 0 = off).
     */
    private byte[] steadyMask(Segmenter.Result r) {
        double strength = steady;
        if (strength <= 0) return r.mask;
        if (smoother == null || strength != smootherStrength) {
            smoother = new ScoreSmoother(strength, ScoreSmoother.CUT_SHARE);
            smootherStrength = strength;
        }
        int classes = segmenter.sidecar.numClasses;
        float[] s = smoother.update(r.scores, r.height, r.width, classes, restartSmoothing);
        restartSmoothing = false;
        return HeadMerge.argmax(s, r.width * r.height, classes);
    }

    private String statsText(double fps) {
        return String.format("%s\n%.1f FPS", lastInference, fps);
    }

    private static Bitmap upright(Bitmap frame, int rotationDegrees, boolean mirror) {
        if (rotationDegrees == 0 && !mirror) return frame;
        Matrix m = new Matrix();
        m.postRotate(rotationDegrees);
        if (mirror) m.postScale(-1, 1); // the preview shows the front camera mirrored
        return Bitmap.createBitmap(frame, 0, 0, frame.getWidth(), frame.getHeight(), m, true);
    }

    private void onPhotoPicked(Uri uri) {
        if (uri == null) return;
        photoMode = true;
        if (cameraProvider != null) cameraProvider.unbindAll();
        overlayView.setImageBitmap(null);
        worker.execute(() -> {
            try {
                lastPhoto = decode(uri);
            } catch (IOException e) {
                runOnUiThread(() -> stats.setText("cannot read the photo: " + e.getMessage()));
                return;
            }
            processPhoto();
        });
    }

    private void refreshPhoto() {
        if (photoMode && lastPhoto != null) worker.execute(this::processPhoto);
    }

    /** Worker thread: the still photo through the same path as the camera frames. */
    private void processPhoto() {
        if (segmenter == null || lastPhoto == null) return;
        int w = lastPhoto.getWidth(), h = lastPhoto.getHeight();
        int[] pixels = new int[w * h];
        lastPhoto.getPixels(pixels, 0, w, 0, 0, w, h);
        Bitmap shown = render(pixels, w, h, false);
        runOnUiThread(() -> {
            photoView.setVisibility(View.VISIBLE);
            photoView.setImageBitmap(shown);
            stats.setText(lastInference);
        });
    }

    /** Decodes a gallery image, subsampled so its long side is at most about PHOTO_MAX_SIDE. */
    private Bitmap decode(Uri uri) throws IOException {
        BitmapFactory.Options bounds = new BitmapFactory.Options();
        bounds.inJustDecodeBounds = true;
        try (InputStream in = getContentResolver().openInputStream(uri)) {
            BitmapFactory.decodeStream(in, null, bounds);
        }
        BitmapFactory.Options opts = new BitmapFactory.Options();
        opts.inSampleSize = 1;
        while (Math.max(bounds.outWidth, bounds.outHeight) / (opts.inSampleSize * 2) >= PHOTO_MAX_SIDE) opts.inSampleSize *= 2;
        opts.inPreferredConfig = Bitmap.Config.ARGB_8888;
        try (InputStream in = getContentResolver().openInputStream(uri)) {
            Bitmap b = BitmapFactory.decodeStream(in, null, opts);
            if (b == null) throw new IOException("not an image");
            return b;
        }
    }

    @Override
    protected void onDestroy() {
        super.onDestroy();
        worker.execute(() -> {
            if (segmenter != null) segmenter.close();
            segmenter = null;
        });
        worker.shutdown();
    }
}
