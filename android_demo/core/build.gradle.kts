// Plain Java, no Android imports: the app's logic that is tested on any JDK (see run_tests.sh).
plugins {
    `java-library`
}

java {
    sourceCompatibility = JavaVersion.VERSION_11
    targetCompatibility = JavaVersion.VERSION_11
}

dependencies {
    // org.json is part of android.jar on the phone: compile against Android's own implementation
    // (libcore's, as published for the JVM), never package it.
    compileOnly("com.vaadin.external.google:android-json:0.0.20131108.vaadin1")
    testImplementation("com.vaadin.external.google:android-json:0.0.20131108.vaadin1")
    testImplementation("junit:junit:4.13.2")
}
